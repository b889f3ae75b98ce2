// Package memstore is a minimal consumer.Store that keeps every report's
// rows in memory: a starting point for a sink to another database (MySQL,
// DuckDB, a search index), and the proof that such a sink needs nothing but
// cometstream's public packages. Its test runs the suite every store must
// pass.
//
// Open(name) returns the same data for the same name within a process, as
// reopening a database file would.
package memstore
