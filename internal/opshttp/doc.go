// Package opshttp serves the operations endpoint every long-running command
// exposes: /metrics (Prometheus), /healthz (the process is alive), /readyz
// (it has done its start-up work and can reach NATS) and, when asked for,
// /debug/pprof/ (Go's profiles). The endpoint listens on loopback by
// default; profiles are off by default because they let anyone who reaches
// the endpoint read the process's memory and stacks and make it work.
package opshttp
