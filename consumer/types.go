package consumer

import "github.com/cometstream/cometstream/internal/event"

// The event types, shared with the producer.
type (
	// Event is a decoded CloudEvents envelope; exactly one of its typed
	// payloads (Row, Synced, Schema, Unavailable, Held) is set.
	Event = event.Event
	// Row is a row's values by column key.
	Row = event.Row
	// Value is one cell in its contract form.
	Value = event.Value
	// Column describes a report column.
	Column = event.Column
	// ColumnType is a COMET column type.
	ColumnType = event.ColumnType
	// RowChange is the data of a row event.
	RowChange = event.RowChange
	// Synced is the receipt of one pass.
	Synced = event.Synced
	// SchemaChange is the data of a schema event.
	SchemaChange = event.SchemaChange
	// Unavailable is the data of an unavailable event.
	Unavailable = event.Unavailable
	// Held is the data of a held event.
	Held = event.Held
	// ReportState is the producer's bookkeeping record of a report.
	ReportState = event.ReportState
)

// Operations and report event kinds, for Config.Ops.
const (
	OpCreated       = event.OpCreated
	OpUpdated       = event.OpUpdated
	OpDeleted       = event.OpDeleted
	KindSynced      = event.KindSynced
	KindSchema      = event.KindSchema
	KindUnavailable = event.KindUnavailable
	KindHeld        = event.KindHeld
)

// Decode parses an event as the producer publishes it.
func Decode(b []byte) (*Event, error) { return event.Decode(b) }
