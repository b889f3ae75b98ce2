// Package testenv holds what cometstream's tests share: real parts started
// in-process (an embedded NATS server with JetStream, the simulator over
// HTTP), the cometstream binary built once, readers of the stream, and the
// invariant checks every integration test makes — each row key's events form
// an unbroken chain, and the chain ends where the simulator's data is.
//
// It is imported only by tests.
package testenv
