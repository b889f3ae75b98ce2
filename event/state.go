package event

import "time"

// ReportState is the producer's bookkeeping for one report, kept in the
// state bucket (StateBucketName) under the report's name. Sinks read it to
// know where the report's snapshot bucket stands relative to the stream.
type ReportState struct {
	// Checkpoint is the stream sequence up to which every event of the report
	// is reflected in its snapshot bucket and in this record. Events of the
	// report after it may or may not be; applying them again is harmless.
	Checkpoint uint64 `json:"checkpoint"`
	// Key is the configured key the snapshot is keyed by.
	Key []string `json:"key"`
	// Columns is the schema last published.
	Columns []Column `json:"columns,omitempty"`
	// Unavailable is the HTTP status COMET refused the key with; 0 while
	// the report is served.
	Unavailable int `json:"unavailable,omitempty"`
	// Held is the number of deletes being held back; 0 when none are.
	Held int `json:"held,omitempty"`
	// Hold is the sync of the pass that started the current hold, and
	// HeldSince when; a release names the hold it applies to.
	Hold      string    `json:"hold,omitempty"`
	HeldSince time.Time `json:"held_since,omitzero"`
	// Pages is the page count of the last complete pass.
	Pages int `json:"pages,omitempty"`
	// Interval is the report's configured interval (a Go duration), so
	// that readers can tell a report that stopped polling.
	Interval string `json:"interval,omitempty"`
	// PageSize is the rows per page COMET served on the last pass, when
	// that was fewer than asked; 0 when it served what was asked.
	PageSize int `json:"page_size,omitempty"`
	// Path and Params are the report's URL shape the snapshot was built
	// from (empty: the default path, no filters). Like Key, they identify
	// the rows: a different shape is a different report.
	Path   string            `json:"path,omitempty"`
	Params map[string]string `json:"params,omitempty"`
	// Undeclared lists the fields, not in columnKeys, that the last schema
	// event named.
	Undeclared []string `json:"undeclared,omitempty"`
	// Inconsistent counts the passes in a row that read every page but were
	// not consistent (so applied no deletes); 0 after a consistent pass.
	Inconsistent int `json:"inconsistent,omitempty"`
	// FailingSince is when the current run of failing passes began (zero
	// while passes succeed); FailedAttempts counts them; FailedPublished
	// is when the last comet.report.failed event was published.
	FailingSince    time.Time `json:"failing_since,omitzero"`
	FailedAttempts  int       `json:"failed_attempts,omitempty"`
	FailedPublished time.Time `json:"failed_published,omitzero"`
	// LastError says why the last pass failed; empty after a success.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	Updated     time.Time `json:"updated"`
}

// AllowDeletesKey is the state-bucket key holding an operator's Release of
// a report's current hold.
func AllowDeletesKey(report string) string { return "allow-deletes." + report }

// Release is an operator's release of one hold of deletes: it applies only
// to the hold it names, to at most Held deletes, until Expires.
type Release struct {
	Hold    string    `json:"hold"`
	Held    int       `json:"held"`
	At      time.Time `json:"at"`
	Expires time.Time `json:"expires"`
}

// WriterKey is the state-bucket key under which the producer that writes a
// stream without ha names itself (a JSON record), so a second one refuses
// to start.
const WriterKey = "producer.writer"

// RepeatedKeysKey is the state-bucket key holding the row key tokens a
// report was seen to repeat: passes settle those keys once, after their last
// row arrived.
func RepeatedKeysKey(report string) string { return "repeated." + report }

// HashHeader carries a row's RowHash (hex) on its snapshot bucket entry, so
// the producer can load its index without reading every value.
const HashHeader = "Cometstream-Hash"
