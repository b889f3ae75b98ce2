// Package event owns what cometstream's producer publishes and every
// consumer reads: the CloudEvents envelope (Event, Decode, Encode), the data
// of each event type (RowChange, Synced, SchemaChange, Unavailable, Held,
// Failed), typed row values that keep every digit of a number (Value, Row),
// column types, the typed names of operations, report event kinds and event
// types (Op, ReportKind, Type), subjects and row key tokens, to build and to
// parse (RowSubject, ReportSubject, ParseSubject, JoinToken, ParseToken),
// deterministic event ids, the JSON Schema each event names in dataschema,
// and the producer's per-report state record (ReportState).
//
// Nothing here does I/O. The producer encodes with these types and the
// consumer library decodes with them, so both sides agree byte for byte on
// what a row looks like. docs/events.md describes the format in prose and
// docs/schemas/v1 as JSON Schemas.
package event
