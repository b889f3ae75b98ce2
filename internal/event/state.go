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
	// Pages is the page count of the last complete pass.
	Pages int `json:"pages,omitempty"`
	// LastError says why the last pass failed; empty after a success.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	Updated     time.Time `json:"updated"`
}

// AllowDeletesKey is the state-bucket key an operator writes to release a
// report's held deletes once.
func AllowDeletesKey(report string) string { return "allow-deletes." + report }

// HashHeader carries a row's RowHash (hex) on its snapshot bucket entry, so
// the producer can load its index without reading every value.
const HashHeader = "Cometstream-Hash"
