// Package consumer is the library for services that react to cometstream's
// change events, and the engine of its materializing sinks.
//
// A Consumer reads the stream through a durable JetStream pull consumer,
// filtered by reports and operations, decodes each message into an Event
// (the CloudEvents attributes and typed row data), and calls a Handler with
// batches in stream order. A batch is acknowledged only after the handler
// returned nil. A failing handler is retried with backoff; a message that
// keeps failing is isolated from its batch and, after MaxDeliver attempts,
// published to a dead-letter subject with the reason, and the consumer moves
// on. Shutdown finishes the batch in hand. A restarted consumer resumes after
// the last acknowledged batch; a handler that must not apply a batch twice
// (a crash can fall between its commit and the acknowledgement) records
// Message.Seq with its effects, as the sinks do.
//
// Materialize builds on it to keep a database equal to the producer's
// snapshot: it bootstraps a fresh database from the snapshot buckets, then
// applies the stream from where each report's snapshot stood, storing the
// stream position in the same transaction as the rows. See Store.
package consumer
