package producer

import "errors"

var (
	// ErrStreamConflict means an existing stream's settings conflict with the
	// configuration; the producer will not change them silently.
	ErrStreamConflict = errors.New("stream settings conflict with the configuration")
	// ErrKeyChanged means a report's configured key differs from the key its
	// snapshot was built with.
	ErrKeyChanged = errors.New("report key changed")
	// ErrReportChanged means a report's configured path or params differ
	// from those its snapshot was built with: they select other rows.
	ErrReportChanged = errors.New("report path or params changed")
	// ErrColumnsChanged means the columns changed between two pages of one
	// pass; the pass is abandoned and the next one starts clean.
	ErrColumnsChanged = errors.New("columns changed during the pass")
	// ErrKeyColumnMissing means a configured key column is not in the report.
	ErrKeyColumnMissing = errors.New("key column missing from the report")
)
