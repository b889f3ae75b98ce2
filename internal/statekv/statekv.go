package statekv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

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
func Reports(ctx context.Context, kv jetstream.KeyValue) ([]string, error) {
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list reports: %w", err)
	}
	var out []string
	for k := range lister.Keys() {
		if event.ReportStateKey(k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out, nil
}
