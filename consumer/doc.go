// Package consumer is the library for services that react to cometstream's
// change events, and the engine of its materializing sinks. The events
// themselves, their typed values, subjects and tokens are package event.
//
// It reads the stream in one of two modes, as JetStream itself keeps them
// apart:
//
//   - A Consumer is durable: the server keeps its position under a name, a
//     batch is acknowledged (message by message) only after the Handler
//     returned nil, a failing handler is retried with backoff, a failing
//     batch is split, and a message that keeps failing (or fails with an
//     error wrapping ErrPermanent) is published to a dead-letter subject with
//     the reason. Messages handed to a consumer that stopped are redelivered
//     after AckWait, so a redelivery can arrive after newer messages.
//   - A Reader follows the stream from a position its caller keeps, through
//     an ordered consumer: in stream order, no gaps, nothing redelivered,
//     nothing stored on the server, and a failing handler retried forever. A
//     handler that stores Message.Seq with its effects and starts from there
//     applies each event exactly once.
//
// A Filter selects events by report, operation and report event kind.
//
// Materialize builds on a Reader to keep a Store equal to the producer's
// snapshot: it bootstraps a report the store has no position for from the
// snapshot bucket, then applies the stream from where each report stands,
// storing the positions in the same transaction as the rows. See Store for
// the rules a third-party store follows, and consumer/sinktest for the suite
// that proves one.
package consumer
