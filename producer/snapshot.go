package producer

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/internal/event"
	"github.com/cometstream/cometstream/internal/replay"
)

// entry is what the producer remembers of one row key: enough to diff
// without reading the bucket.
type entry struct {
	hash event.Hash
	// rev is the revision of the key's latest bucket entry (a value or a
	// delete marker); it goes into event ids.
	rev uint64
	// seen is the number of the last pass that saw the key.
	seen uint32
	live bool
}

// snapshot is the in-memory index of a report's snapshot bucket.
type snapshot struct {
	kv     jetstream.KeyValue
	bucket string
	rows   map[string]entry
	live   int
}

func newSnapshot(kv jetstream.KeyValue, bucket string) *snapshot {
	return &snapshot{kv: kv, bucket: bucket, rows: map[string]entry{}}
}

// load reads the last entry of every key (headers only: the row hash is a
// header) into the index.
func (s *snapshot) load(ctx context.Context, js jetstream.JetStream) error {
	s.rows, s.live = map[string]entry{}, 0
	prefix := "$KV." + s.bucket + "."
	var missing []string
	_, err := replay.Read(ctx, js, "KV_"+s.bucket, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{prefix + ">"},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
		HeadersOnly:    true,
	}, func(m jetstream.Msg) error {
		md, err := m.Metadata()
		if err != nil {
			return err
		}
		token := strings.TrimPrefix(m.Subject(), prefix)
		e := entry{rev: md.Sequence.Stream}
		switch m.Headers().Get("KV-Operation") {
		case "DEL", "PURGE":
		default:
			e.live = true
			s.live++
			h, err := hex.DecodeString(m.Headers().Get(event.HashHeader))
			if err != nil || len(h) != len(e.hash) {
				missing = append(missing, token) // written by someone else: hash the value
			}
			copy(e.hash[:], h)
		}
		s.rows[token] = e
		return nil
	})
	if err != nil {
		return fmt.Errorf("load snapshot %s: %w", s.bucket, err)
	}
	for _, token := range missing {
		v, err := s.get(ctx, token)
		if err != nil {
			return fmt.Errorf("load snapshot %s: %w", s.bucket, err)
		}
		e := s.rows[token]
		e.hash = event.RowHash(v)
		s.rows[token] = e
	}
	return nil
}

// get returns a row's current value from the bucket.
func (s *snapshot) get(ctx context.Context, token string) ([]byte, error) {
	e, err := s.kv.Get(ctx, token)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("row %s is in the index but not in bucket %s", token, s.bucket)
		}
		return nil, fmt.Errorf("get row %s: %w", token, err)
	}
	return e.Value(), nil
}

// written records an acknowledged snapshot write.
func (s *snapshot) written(w *kvWrite, rev uint64) {
	e := s.rows[w.token]
	e.rev = rev
	s.rows[w.token] = e
}
