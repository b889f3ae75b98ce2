package statekv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
)

// ErrNoBucket means the state bucket does not exist: no producer has run
// with that subject prefix.
var ErrNoBucket = errors.New("no producer state")

// Open returns the state bucket of a subject prefix, or an error wrapping
// ErrNoBucket that says what that means.
func Open(ctx context.Context, js jetstream.JetStream, prefix string) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, event.StateBucketName(prefix))
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("%w in bucket %s: has a producer run with subject prefix %q?", ErrNoBucket, event.StateBucketName(prefix), prefix)
	}
	if err != nil {
		return nil, fmt.Errorf("state bucket %s: %w", event.StateBucketName(prefix), err)
	}
	return kv, nil
}

// Report reads a report's state record and its revision; revision 0 (and
// a zero record) when there is none yet.
func Report(ctx context.Context, kv jetstream.KeyValue, report string) (event.ReportState, uint64, error) {
	var st event.ReportState
	e, err := kv.Get(ctx, report)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return st, 0, nil
	}
	if err != nil {
		return st, 0, fmt.Errorf("read state of %s: %w", report, err)
	}
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return st, 0, fmt.Errorf("state of %s is corrupt: %w", report, err)
	}
	return st, e.Revision(), nil
}

// Reports lists, sorted, the reports the bucket holds records of.
func Reports(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue) ([]string, error) {
	keys, err := Keys(ctx, js, kv)
	if err != nil {
		return nil, fmt.Errorf("list reports: %w", err)
	}
	return slices.DeleteFunc(keys, func(k string) bool { return !event.ReportStateKey(k) }), nil
}

// Keys lists, sorted, the live keys of a bucket. It reads them from the
// stream's subjects, without a consumer: KeyValue.ListKeys creates one and
// deletes it, which a user with the subscriber role may not do (the server
// refuses, and the client waits for the refusal's timeout).
func Keys(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue) ([]string, error) {
	bucket := kv.Bucket()
	s, err := js.Stream(ctx, event.KVStream(bucket))
	if err != nil {
		return nil, err
	}
	prefix := event.KVSubjectPrefix(bucket)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return nil, err
	}
	var out []string
	for subject := range info.State.Subjects {
		key := strings.TrimPrefix(subject, prefix)
		// A deleted or purged key keeps its marker, a subject of its own.
		if _, err := kv.Get(ctx, key); errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		out = append(out, key)
	}
	slices.Sort(out)
	return out, nil
}
