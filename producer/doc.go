// Package producer polls COMET saved reports, diffs every row by its key
// against a snapshot kept in a JetStream key-value bucket, and publishes
// created, updated and deleted events (CloudEvents JSON) to the stream.
//
// # Exactly once
//
// The stream is the log; the snapshot bucket and the state record are a
// checkpoint of it. A pass publishes its events (each with a deterministic
// Nats-Msg-Id), and only after the stream has acknowledged an event does the
// producer write the row to the snapshot bucket; after a batch of events is
// written, it records in the state bucket the stream sequence the snapshot
// now reflects. A producer killed at any point restarts by loading the
// snapshot and applying to it every event of the report that the stream
// holds beyond that sequence. Its next pass therefore diffs against what the
// stream says, whatever the downtime, and neither repeats a change the
// stream holds nor loses one it does not: the stream's duplicate window is
// only needed for the moments around a failed publish.
//
// Event ids are derived from the report, the row key token, the operation,
// the row's new content and the revision of the row's last snapshot entry,
// so re-detecting the same change gives the same id, and a row that flips
// back and forth gets a new id each time.
//
// # Deletes
//
// A row is deleted only when it is missing from two consecutive consistent
// passes (every page fetched, totalSize unchanged across pages, as many
// unique keys as totalSize, no duplicate keys). One consistent pass is not
// proof: a delete and an insert landing between two pages shift a row into a
// page already fetched without changing any count. When a consistent pass
// finds rows missing, the confirming pass starts at once rather than an
// interval later. Deletes above max_delete_fraction of the snapshot are held
// until a pass falls under it or an operator releases them.
package producer
