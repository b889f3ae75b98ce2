package producer

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/streamrange"
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
	// tok and tokLen locate the key's token in snapshot.tokens.
	tok uint32
	// published is the number of the last pass that published the key,
	// and created says that publish created it.
	published uint32
	tokLen    uint16
	live      bool
	created   bool
}

// snapshot is the in-memory index of a report's snapshot bucket.
//
// It holds no pointers per key, so the garbage collector does not walk a
// million rows on every cycle: tokens sit back to back in one byte slice,
// entries in another slice, and the map goes from a 64-bit hash of the
// token to the entry's position. Two tokens with the same hash (about one
// chance in 10^8 for a million keys) are told apart by comparing the token;
// the later one lives in a small overflow map.
type snapshot struct {
	kv       jetstream.KeyValue
	bucket   string
	hash     func(string) uint64
	index    map[uint64]int32
	overflow map[string]int32
	tokens   []byte
	entries  []entry
	live     int
}

func newSnapshot(kv jetstream.KeyValue, bucket string) *snapshot {
	s := &snapshot{kv: kv, bucket: bucket}
	s.reset()
	return s
}

func (s *snapshot) reset() {
	seed := maphash.MakeSeed()
	s.hash = func(t string) uint64 { return maphash.String(seed, t) }
	s.index, s.overflow, s.tokens, s.entries, s.live = map[uint64]int32{}, nil, nil, nil, 0
}

// token returns the token of entry i.
func (s *snapshot) token(i int32) string {
	e := &s.entries[i]
	return string(s.tokens[e.tok : e.tok+uint32(e.tokLen)])
}

// find returns the position of a token's entry.
func (s *snapshot) find(token string) (int32, bool) {
	if i, ok := s.index[s.hash(token)]; ok {
		e := &s.entries[i]
		if string(s.tokens[e.tok:e.tok+uint32(e.tokLen)]) == token {
			return i, true
		}
	}
	i, ok := s.overflow[token]
	return i, ok
}

// add makes an entry for a token not in the index. The token is copied: it
// may point into a page that must not be kept alive.
func (s *snapshot) add(token string) int32 {
	i := int32(len(s.entries))
	s.entries = append(s.entries, entry{tok: uint32(len(s.tokens)), tokLen: uint16(len(token))})
	s.tokens = append(s.tokens, token...)
	h := s.hash(token)
	if _, taken := s.index[h]; taken {
		if s.overflow == nil {
			s.overflow = map[string]int32{}
		}
		s.overflow[strings.Clone(token)] = i
	} else {
		s.index[h] = i
	}
	return i
}

// load reads the last entry of every key (headers only: the row hash is a
// header) into the index.
func (s *snapshot) load(ctx context.Context, js jetstream.JetStream) error {
	s.reset()
	prefix := event.KVSubjectPrefix(s.bucket)
	var missing []string
	_, err := streamrange.Named(ctx, js, event.KVStream(s.bucket), ConsumerNamePrefix+"snapshot-"+s.bucket, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{prefix + ">"},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
		HeadersOnly:    true,
	}, func(m jetstream.Msg) error {
		md, err := m.Metadata()
		if err != nil {
			return err
		}
		token := strings.TrimPrefix(m.Subject(), prefix)
		var e entry
		switch {
		case event.KVRemoved(m.Headers().Get(event.KVOperationHeader)):
		default:
			e.live = true
			s.live++
			h, err := hex.DecodeString(m.Headers().Get(event.HashHeader))
			if err != nil || len(h) != len(e.hash) {
				missing = append(missing, token) // written by someone else: hash the value
			}
			copy(e.hash[:], h)
		}
		i := s.add(token)
		e.tok, e.tokLen, e.rev = s.entries[i].tok, s.entries[i].tokLen, md.Sequence.Stream
		s.entries[i] = e
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
		i, _ := s.find(token)
		s.entries[i].hash = event.RowHash(v)
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
func (s *snapshot) written(w *kvWrite, rev uint64) { s.entries[w.idx].rev = rev }
