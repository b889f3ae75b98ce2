package postgres

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/cometstream/cometstream/consumer"
)

type timedStore struct {
	*Store
	total atomic.Int64
}

func (t *timedStore) Apply(ctx context.Context, b *consumer.Batch) error {
	start := time.Now()
	err := t.Store.Apply(ctx, b)
	t.total.Add(int64(time.Since(start)))
	return err
}
