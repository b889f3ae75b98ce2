package verify

import "errors"

// The reasons a report could not be verified, in Result.Err.
var (
	// ErrBehind means the sink did not reach the stream's position within
	// Config.Timeout: Result.Position is where it stood, Result.Stream
	// where the stream was.
	ErrBehind = errors.New("sink behind")
	// ErrUnsettled means no attempt could compare the report at one
	// position: the sink went back (a rebuild), or the stream no longer
	// held the events needed, every time.
	ErrUnsettled = errors.New("did not hold still")
	// ErrTrimmed means the stream no longer holds every event of the
	// report after its checkpoint, so the rows at the stream's position
	// cannot be known.
	ErrTrimmed = errors.New("the stream no longer holds every event after the checkpoint")
	// ErrNotMaterialized means the database has neither a table nor a
	// position for a report asked for.
	ErrNotMaterialized = errors.New("not in the database")
	// ErrNoKey means neither the producer's state nor the database says
	// what the report's key columns are.
	ErrNoKey = errors.New("the report's key is not known")
)

// ErrNoReports is returned by Run when the database holds no report and
// none was asked for.
var ErrNoReports = errors.New("the database holds no reports")
