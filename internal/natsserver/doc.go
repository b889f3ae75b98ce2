// Package natsserver runs the embedded NATS server with JetStream that
// cometstream starts when no NATS URL is configured, so that one process on
// a laptop needs nothing else, while sinks and the nats CLI can still
// connect to it.
package natsserver
