// Package postgres is the PostgreSQL store of cometstream's materializing
// sink (docs/sinks.md): the report tables in one schema (comet by
// default), NUMBER and AMOUNT as numeric, DATE as date, DATETIME as
// timestamptz, the rest text, the key columns as primary key, each column's
// COMET display name as its comment, and bookkeeping in tables starting
// with _cometstream.
//
// A batch of events is one transaction with the stream positions: rows new
// to a table go in with a binary COPY, rows it has already through COPY
// into a temporary table and one INSERT … ON CONFLICT, deletes in one
// DELETE per table. A bootstrap is a consumer.BulkLoader load: one
// transaction that empties the table, streams every row into it with a
// single COPY and builds its primary key once, at the end.
package postgres
