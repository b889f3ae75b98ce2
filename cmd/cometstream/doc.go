// Command cometstream turns COMET saved reports into a stream of change
// events on NATS JetStream, and materializes them into SQLite, PostgreSQL
// and webhooks. Run "cometstream help" for the commands; docs/commands.md
// describes each.
//
// This package is wiring only: each command parses its flags and
// configuration and runs what the producer, consumer and internal packages
// provide (docs/architecture.md).
package main
