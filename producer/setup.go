package producer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
)

// ensureStream creates the stream, or checks that an existing one carries
// our subjects with our replicas and duplicate window. Its retention
// limits (max age and size) are the configuration's: a stream created with
// others, or changed with the nats CLI, is updated to them and the change
// logged. The snapshot buckets have no such limits: they are the snapshot.
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg *Config) (jetstream.Stream, error) {
	name, prefix, replicas, dup := cfg.Stream, cfg.Prefix, cfg.Replicas, cfg.DuplicateWindow
	want := jetstream.StreamConfig{
		Name:        name,
		Description: "cometstream change events",
		Subjects:    []string{prefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Replicas:    replicas,
		Duplicates:  dup,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    limitBytes(cfg.MaxBytes),
		AllowDirect: true,
		// Batches are stored all or nothing, and fenced (see publisher).
		AllowAtomicPublish: true,
	}
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, want)
		if err != nil {
			return nil, fmt.Errorf("create stream %s: %w", name, err)
		}
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", name, err)
	}
	have := s.CachedInfo().Config
	switch {
	case !slices.Equal(have.Subjects, want.Subjects):
		return nil, fmt.Errorf("%w: stream %s has subjects %v, configuration wants %v", ErrStreamConflict, name, have.Subjects, want.Subjects)
	case have.Replicas != want.Replicas:
		return nil, fmt.Errorf("%w: stream %s has %d replicas, configuration wants %d (change it with the nats CLI if you mean it)", ErrStreamConflict, name, have.Replicas, want.Replicas)
	case have.Duplicates != want.Duplicates:
		return nil, fmt.Errorf("%w: stream %s has a duplicate window of %s, configuration wants %s", ErrStreamConflict, name, have.Duplicates, want.Duplicates)
	case have.Retention != jetstream.LimitsPolicy:
		return nil, fmt.Errorf("%w: stream %s has retention %s, cometstream needs limits", ErrStreamConflict, name, have.Retention)
	case have.Storage != jetstream.FileStorage:
		return nil, fmt.Errorf("%w: stream %s uses %s storage, configuration wants file", ErrStreamConflict, name, have.Storage)
	}
	if !have.AllowAtomicPublish || !have.AllowDirect {
		// Additions that change nothing for readers: made, not refused.
		have.AllowAtomicPublish, have.AllowDirect = true, true
		if s, err = js.UpdateStream(ctx, have); err != nil {
			return nil, fmt.Errorf("enable atomic batches on stream %s: %w", name, err)
		}
		have = s.CachedInfo().Config
	}
	if have.MaxAge != want.MaxAge || have.MaxBytes != want.MaxBytes {
		was := have
		have.MaxAge, have.MaxBytes = want.MaxAge, want.MaxBytes
		if s, err = js.UpdateStream(ctx, have); err != nil {
			return nil, fmt.Errorf("set the retention of stream %s to max age %s, max bytes %s: %w", name, ageText(want.MaxAge), bytesText(want.MaxBytes), err)
		}
		cfg.Logger.Info("stream retention changed to the configuration's",
			"stream", name, "max_age", ageText(want.MaxAge), "max_bytes", bytesText(want.MaxBytes),
			"was_max_age", ageText(was.MaxAge), "was_max_bytes", bytesText(was.MaxBytes))
	}
	return s, nil
}

// limitBytes is a size limit as JetStream writes "unlimited": -1.
func limitBytes(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

func ageText(d time.Duration) string {
	if d <= 0 {
		return "unlimited"
	}
	return d.String()
}

func bytesText(n int64) string {
	if n <= 0 {
		return "unlimited"
	}
	return strconv.FormatInt(n, 10)
}

// ErrNoFencing means the NATS server cannot fence producers (atomic batch
// publish, nats-server 2.12 and later): several producers sharing reports
// with ha would then be able to publish after losing their lease.
var ErrNoFencing = errors.New("the NATS server cannot fence producers")

// checkFencing refuses leases on a server that did not give the stream
// atomic batches: what the server returned, not what was asked, decides.
func checkFencing(s jetstream.Stream, serverVersion string) error {
	if s.CachedInfo().Config.AllowAtomicPublish {
		return nil
	}
	return fmt.Errorf("%w: nats-server %s did not enable atomic batch publish on stream %s, which ha needs to fence a producer that lost its lease: use nats-server 2.12 or newer, or run one producer without ha",
		ErrNoFencing, serverVersion, s.CachedInfo().Config.Name)
}

// ensureBucket creates a key-value bucket or opens an existing one.
func ensureBucket(ctx context.Context, js jetstream.JetStream, name, description string, replicas, history int) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: name, Description: description, History: uint8(history),
			Storage: jetstream.FileStorage, Replicas: replicas,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", name, err)
	}
	return kv, nil
}

// ensureBuckets creates the state bucket and one snapshot bucket per report.
func ensureBuckets(ctx context.Context, js jetstream.JetStream, prefix string, replicas int, reports []string) (state jetstream.KeyValue, snaps map[string]jetstream.KeyValue, err error) {
	state, err = ensureBucket(ctx, js, event.StateBucketName(prefix), "cometstream producer bookkeeping", replicas, 5)
	if err != nil {
		return nil, nil, err
	}
	snaps = map[string]jetstream.KeyValue{}
	for _, r := range reports {
		kv, err := ensureBucket(ctx, js, event.BucketName(prefix, r), "cometstream snapshot of report "+r, replicas, 1)
		if err != nil {
			return nil, nil, err
		}
		snaps[r] = kv
	}
	return state, snaps, nil
}
