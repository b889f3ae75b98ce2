package verify

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/statekv"
	"github.com/cometstream/cometstream/internal/streamrange"
)

// source reads what the producer wrote: state records, snapshot buckets
// and the stream.
type source struct {
	js         jetstream.JetStream
	stream     jetstream.Stream
	state      jetstream.KeyValue // nil while there is no state bucket
	streamName string
	prefix     string
}

func newSource(ctx context.Context, js jetstream.JetStream, stream, prefix string) (*source, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	src := &source{js: js, stream: s, streamName: stream, prefix: prefix}
	src.state, err = statekv.Open(ctx, js, prefix)
	if errors.Is(err, statekv.ErrNoBucket) {
		src.state = nil
	} else if err != nil {
		return nil, err
	}
	return src, nil
}

// readState reads a report's state record; the zero record (checkpoint 0,
// every event still to apply) when there is none.
func (s *source) readState(ctx context.Context, report string) (event.ReportState, error) {
	if s.state == nil {
		return event.ReportState{}, nil
	}
	st, _, err := statekv.Report(ctx, s.state, report)
	return st, err
}

// bucket reads a report's snapshot rows by token.
func (s *source) bucket(ctx context.Context, report string) (map[string]event.Row, error) {
	rows := map[string]event.Row{}
	err := consumer.ReadBucket(ctx, s.js, s.prefix, report, func(token string, row event.Row) error {
		rows[token] = row
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot of %s: %w", report, err)
	}
	return rows, nil
}

// lastSeq returns the sequence of the report's last event in the stream, 0
// when it holds none.
func (s *source) lastSeq(ctx context.Context, report string) (uint64, error) {
	m, err := s.stream.GetLastMsgForSubject(ctx, event.ReportFilter(s.prefix, report))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("last event of %s: %w", report, err)
	}
	return m.Sequence, nil
}

// errEnough stops a read of the stream at the last sequence wanted.
var errEnough = errors.New("read enough")

// apply applies the report's row events after sequence from, up to and
// including to, to rows: a created or updated event's after replaces the
// row of its token, a deleted event removes it. It returns an error
// wrapping ErrTrimmed when the stream no longer starts right after from.
func (s *source) apply(ctx context.Context, report string, rows map[string]event.Row, from, to uint64) error {
	if to <= from {
		return nil
	}
	info, err := s.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", s.streamName, err)
	}
	if first := info.State.FirstSeq; first > from+1 {
		return fmt.Errorf("%w: events %d to %d of the stream are gone (it starts at %d)", ErrTrimmed, from+1, first-1, first)
	}
	_, err = streamrange.Read(ctx, s.js, s.streamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{event.ReportFilter(s.prefix, report)},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from + 1,
	}, func(m jetstream.Msg) error {
		md, err := m.Metadata()
		if err != nil {
			return err
		}
		if md.Sequence.Stream > to {
			return errEnough
		}
		subj, err := event.ParseSubject(s.prefix, m.Subject())
		if err != nil || !subj.Row {
			return nil // a report event, or not an event: the sinks skip it too
		}
		ev, err := event.Decode(m.Data())
		if err != nil {
			return fmt.Errorf("event %d (%s): %w", md.Sequence.Stream, m.Subject(), err)
		}
		switch {
		case ev.Row == nil:
		case ev.Row.After == nil: // deleted
			delete(rows, subj.Token)
		default:
			rows[subj.Token] = ev.Row.After
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return fmt.Errorf("events of %s: %w", report, err)
	}
	return nil
}
