package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/streamrange"
)

// ReadBucket calls fn with the row key token and the row of every key of a
// report's snapshot bucket (event.BucketName): the last value of each key,
// skipping keys deleted or purged. It is not a snapshot of one instant: a
// key written while it reads may be delivered again with its new value
// (the last call wins), and one deleted meanwhile may have been delivered
// already. Both are harmless to a caller that then applies the report's
// events after the checkpoint it read before the bucket, as Materialize
// does. A bucket that does not exist holds no rows. It stops at fn's first
// error and returns it.
func ReadBucket(ctx context.Context, js jetstream.JetStream, prefix, report string, fn func(token string, row event.Row) error) error {
	bucket := event.BucketName(prefix, report)
	keys := event.KVSubjectPrefix(bucket)
	_, err := streamrange.Read(ctx, js, event.KVStream(bucket), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{keys + ">"},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	}, func(msg jetstream.Msg) error {
		if event.KVRemoved(msg.Headers().Get(event.KVOperationHeader)) {
			return nil
		}
		var row event.Row
		if err := json.Unmarshal(msg.Data(), &row); err != nil {
			return fmt.Errorf("snapshot row %s: %w", msg.Subject(), err)
		}
		return fn(strings.TrimPrefix(msg.Subject(), keys), row)
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	return err
}
