// Package event owns the types that the producer and every consumer share:
// typed row values in their contract form, column schemas, row key tokens,
// subjects, deterministic event ids and the CloudEvents envelope.
//
// Nothing here does I/O. The producer encodes with these types and the
// consumer library decodes with them, so both sides agree byte for byte on
// what a row looks like (see CONTRACT.md sections 4 and 5).
package event
