// Package sinktest holds the tests every materializing sink must pass, run
// against the real binary, the simulator, an in-process NATS server and the
// sink's real database: convergence while the producer and the sink are
// killed at random, replay into a fresh database after the stream was
// trimmed, and a schema change mid-stream. Each sink's own test supplies a
// Target.
//
// It is imported only by tests.
package sinktest
