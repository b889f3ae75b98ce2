package memstore

import (
	"testing"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/consumer/sinktest"
	"github.com/cometstream/cometstream/event"
)

// TestStoreSuite runs the suite every consumer.Store must pass, the one the
// built-in SQLite and PostgreSQL stores run, against this one.
func TestStoreSuite(t *testing.T) {
	sinktest.RunStore(t, sinktest.StoreTarget{
		Open: func(t *testing.T, name string) consumer.Store { return Open(t.Name() + "/" + name) },
		Rows: func(_ *testing.T, s consumer.Store, report string) []event.Row { return s.(*Store).Rows(report) },
	})
}
