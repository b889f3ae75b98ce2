// Package postgres is the PostgreSQL store of cometstream's materializing
// sink (docs/sinks.md): the report tables in one schema (comet by
// default), NUMBER and AMOUNT as numeric, DATE as date, DATETIME as
// timestamptz, the rest text, the key columns as primary key, and
// bookkeeping in tables starting with _cometstream. Upserts go through COPY
// into a temporary table and one INSERT … ON CONFLICT per table and batch,
// in the same transaction as the stream positions.
package postgres
