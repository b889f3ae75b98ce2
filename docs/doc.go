// Package docs holds cometstream's reference material. The directory keeps
// the example deployment files (compose/, nats-server.conf) and the
// machine-readable description of what cometstream publishes, which this
// package embeds: the JSON Schemas (draft 2020-12) in schemas/v1/ of the
// CloudEvents envelope, of each event type's data and of a KV snapshot row,
// and the AsyncAPI 3.0 document of the NATS stream, asyncapi.yaml, which
// references them.
//
// ValidateEvent and ValidateSnapshotRow check a message against the schemas
// without touching the network: the schemas are loaded by their $id from the
// embedded copies. Each event names the schema of its data in its dataschema
// attribute, DataSchema(type).
package docs
