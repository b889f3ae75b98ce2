// Package verify proves that a sink's database holds what the producer's
// snapshot says it should: it compares every materialized table, row by
// row, with the rows the snapshot gives at the stream position the sink has
// reached, and names every row that is missing, extra or different. The
// command `cometstream verify sqlite|postgres` runs it.
//
// The expected rows of a report are built from what the producer wrote,
// read in this order: its state record (the checkpoint C, up to which the
// snapshot bucket reflects the stream), the snapshot bucket, then the
// sequence L of the report's last event in the stream. The bucket reflects
// at least C, and never an event the stream does not hold yet (the producer
// writes a row after the stream acknowledged its event), so an event it
// reflects is at most L, read after it. Applying the report's row events
// after C up to L to the bucket's rows (an event's "after" replaces the
// row, a delete removes it) gives exactly the rows at L, however much the
// producer published meanwhile.
//
// The sink records, in the transaction that applies them, the sequence of
// the last event it applied for each report. Verify waits (Config.Timeout)
// for that position P to reach L, then reads the table and P in one read
// transaction, so the rows are the table at P; if the sink has gone past L,
// the events up to P are applied to the expected rows too. The comparison
// is then of two row sets at the same position. A sink that just
// bootstrapped from the bucket may hold rows ahead of its position until it
// has applied the events its bucket read reflected, so differences found
// while the stream has moved past P are checked again (Config.Attempts)
// before they are reported.
//
// Rows are matched by the report's key columns (numbers by value), or, for
// a content-keyed report (key ["*"]), by the row key token the table keeps
// in its own column. Values compare as the sinks store them: numbers by
// value (to the 15 significant digits SQLite keeps, or exactly with
// Config.ExactNumbers), text exactly, null only with null; a column the
// expected row lacks is null.
package verify
