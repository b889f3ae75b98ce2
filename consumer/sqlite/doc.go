// Package sqlite is the SQLite store of cometstream's materializing sink
// (docs/sinks.md): one table per report named after it, one column
// per column key (NUMERIC for NUMBER and AMOUNT, TEXT otherwise), the key
// columns as primary key, and bookkeeping in tables starting with
// _cometstream. It uses modernc.org/sqlite (no cgo) in WAL mode. A
// bootstrap is a consumer.BulkLoader load: one transaction of multi-row
// INSERTs with a larger page cache.
package sqlite
