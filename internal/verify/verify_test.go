package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/testenv"
)

// fakeDB is a sink's database as a test wants it.
type fakeDB struct {
	PositionsFunc func(ctx context.Context) (map[string]uint64, error)
	TablesFunc    func(ctx context.Context) (map[string]*consumer.Table, error)
	ReadRowsFunc  func(ctx context.Context, report string) ([]event.Row, uint64, error)
}

var _ Database = (*fakeDB)(nil)

func (f *fakeDB) Positions(ctx context.Context) (map[string]uint64, error) {
	return f.PositionsFunc(ctx)
}

func (f *fakeDB) Tables(ctx context.Context) (map[string]*consumer.Table, error) {
	if f.TablesFunc == nil {
		return map[string]*consumer.Table{}, nil
	}
	return f.TablesFunc(ctx)
}

func (f *fakeDB) ReadRows(ctx context.Context, report string) ([]event.Row, uint64, error) {
	return f.ReadRowsFunc(ctx, report)
}

// at is a database holding rows at a position, which it reports both in
// Positions and in ReadRows.
func at(pos uint64, rows ...event.Row) *fakeDB {
	return &fakeDB{
		PositionsFunc: func(context.Context) (map[string]uint64, error) {
			return map[string]uint64{"people": pos, "#stream": 1}, nil
		},
		ReadRowsFunc: func(context.Context, string) ([]event.Row, uint64, error) { return rows, pos, nil },
	}
}

// producer writes what a producer would for report people, by hand, so a
// test decides what the bucket reflects and where the checkpoint stands.
type producer struct {
	t      *testing.T
	js     jetstream.JetStream
	bucket jetstream.KeyValue
	state  jetstream.KeyValue
	n      int
}

func newProducer(t *testing.T) *producer {
	srv := testenv.StartNATS(t, filepath.Join(t.TempDir(), "nats"))
	_, js := testenv.Connect(t, srv.ClientURL())
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: event.DefaultStream, Subjects: []string{event.DefaultPrefix + ".>"}}); err != nil {
		t.Fatal(err)
	}
	p := &producer{t: t, js: js}
	var err error
	if p.bucket, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: event.BucketName(event.DefaultPrefix, "people")}); err != nil {
		t.Fatal(err)
	}
	if p.state, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: event.StateBucketName(event.DefaultPrefix)}); err != nil {
		t.Fatal(err)
	}
	return p
}

var peopleColumns = []event.Column{{Key: "id", Name: "Id", Type: event.TypeNumber}, {Key: "name", Name: "Name", Type: event.TypeString}}

func person(id, name string) event.Row {
	return event.Row{"id": event.NumberValue(id), "name": event.TextValue(name)}
}

func rowJSON(r event.Row) []byte {
	if r == nil {
		return nil
	}
	b, _ := json.Marshal(map[string]event.Value(r))
	return b
}

// publish publishes a row event of person id and returns its sequence;
// after nil is a delete. The bucket is not written.
func (p *producer) publish(op event.Op, id string, before, after event.Row) uint64 {
	p.t.Helper()
	p.n++
	data := (&event.RowEvent{ID: event.ID("people", fmt.Sprint(p.n)), Source: "comet://test/people", Token: id, Time: time.Now(), Report: "people",
		Op: op, Sync: "s", Key: []byte(`{"id":` + id + `}`), Before: rowJSON(before), After: rowJSON(after), Changed: []string{"name"}}).Append(nil)
	ack, err := p.js.Publish(context.Background(), event.RowSubject(event.DefaultPrefix, "people", op, id), data)
	if err != nil {
		p.t.Fatal(err)
	}
	return ack.Sequence
}

// synced publishes a receipt, as every pass ends with.
func (p *producer) synced() uint64 {
	p.t.Helper()
	data, _ := event.Encode(event.ID("people", "synced", fmt.Sprint(p.n)), "comet://test/people", event.TypeSynced, time.Now(), event.Synced{Report: "people", Sync: "s", Consistent: true})
	ack, err := p.js.Publish(context.Background(), event.ReportSubject(event.DefaultPrefix, "people", event.KindSynced), data)
	if err != nil {
		p.t.Fatal(err)
	}
	return ack.Sequence
}

func (p *producer) put(id string, row event.Row) {
	p.t.Helper()
	if _, err := p.bucket.Put(context.Background(), id, rowJSON(row)); err != nil {
		p.t.Fatal(err)
	}
}

func (p *producer) checkpoint(seq uint64) {
	p.t.Helper()
	st, _ := json.Marshal(event.ReportState{Checkpoint: seq, Key: []string{"id"}, Columns: peopleColumns})
	if _, err := p.state.Put(context.Background(), "people", st); err != nil {
		p.t.Fatal(err)
	}
}

// world publishes people 1 and 2 (in the bucket, checkpointed), then
// creates 3, renames 2 and deletes 1 without writing the bucket: the rows
// at the stream's end are 2 (renamed) and 3, which only the bucket and the
// events after the checkpoint together give.
func world(t *testing.T) (*producer, uint64) {
	p := newProducer(t)
	p.publish(event.OpCreated, "1", nil, person("1", "Bale"))
	p.publish(event.OpCreated, "2", nil, person("2", "Ramsey"))
	p.put("1", person("1", "Bale"))
	p.put("2", person("2", "Ramsey"))
	p.checkpoint(p.synced())
	p.publish(event.OpCreated, "3", nil, person("3", "Allen"))
	p.publish(event.OpUpdated, "2", person("2", "Ramsey"), person("2", "Ramsey-Jones"))
	p.publish(event.OpDeleted, "1", person("1", "Bale"), nil)
	return p, p.synced()
}

func run(t *testing.T, p *producer, db Database, mod func(*Config)) Result {
	t.Helper()
	cfg := Config{JetStream: p.js, DB: db, Timeout: 0, Poll: time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	results, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(results) != 1 || results[0].Report != "people" {
		t.Fatalf("results %+v, want one for people", results)
	}
	return results[0]
}

// TestVerifyRun checks the algorithm against a stream written by hand: the
// expected rows are the bucket plus the events after the checkpoint, the
// sink is waited for, and a sink past the stream's position read is
// compared at its own position.
func TestVerifyRun(t *testing.T) {
	p, last := world(t)
	want := []event.Row{person("2", "Ramsey-Jones"), person("3", "Allen")}

	t.Run("the bucket and the events after the checkpoint", func(t *testing.T) {
		res := run(t, p, at(last, want...), nil)
		if !res.Equal() || res.Rows != 2 || res.Position != last || res.Stream != last {
			t.Errorf("result %+v, want equal, 2 rows at %d", res, last)
		}
	})
	t.Run("the bucket alone is not enough", func(t *testing.T) {
		res := run(t, p, at(last, person("1", "Bale"), person("2", "Ramsey")), nil)
		if got := render(res.Diffs); got != `missing 3; extra 1; changed 2 name="Ramsey"/"Ramsey-Jones"` {
			t.Errorf("differences %s", got)
		}
	})
	t.Run("a sink that stays behind", func(t *testing.T) {
		res := run(t, p, at(last-1, want...), func(c *Config) { c.Timeout = 50 * time.Millisecond })
		if !errors.Is(res.Err, ErrBehind) || res.Position != last-1 || res.Stream != last {
			t.Errorf("result %+v, want behind at %d, stream at %d", res, last-1, last)
		}
	})
	t.Run("a sink that catches up while waited for", func(t *testing.T) {
		var polls atomic.Int32
		db := at(last, want...)
		db.PositionsFunc = func(context.Context) (map[string]uint64, error) {
			if polls.Add(1) < 5 {
				return map[string]uint64{"people": last - 3}, nil
			}
			return map[string]uint64{"people": last}, nil
		}
		res := run(t, p, db, func(c *Config) { c.Timeout = 10 * time.Second })
		if !res.Equal() || polls.Load() < 5 {
			t.Errorf("result %+v after %d polls, want equal after waiting", res, polls.Load())
		}
	})
	t.Run("the producer publishes and the sink applies while verifying", func(t *testing.T) {
		// By the time the table is read the producer has deleted 3 and the
		// sink applied it: the expected rows follow the sink's position.
		db := at(last, want...)
		var pos uint64
		db.ReadRowsFunc = func(context.Context, string) ([]event.Row, uint64, error) {
			if pos == 0 {
				p.publish(event.OpDeleted, "3", person("3", "Allen"), nil)
				pos = p.synced()
			}
			return []event.Row{person("2", "Ramsey-Jones")}, pos, nil
		}
		res := run(t, p, db, nil)
		if !res.Equal() || res.Position != pos || res.Rows != 1 {
			t.Errorf("result %+v, want equal with 1 row at %d", res, pos)
		}
		last, want = pos, want[:1]
	})
	t.Run("a sink whose position goes back", func(t *testing.T) {
		db := at(last, want...)
		db.ReadRowsFunc = func(context.Context, string) ([]event.Row, uint64, error) { return want, 2, nil }
		res := run(t, p, db, func(c *Config) { c.Attempts = 3 })
		if !errors.Is(res.Err, ErrUnsettled) || !strings.Contains(res.Err.Error(), "after 3 attempts") {
			t.Errorf("result %+v, want unsettled after 3 attempts", res)
		}
	})
	t.Run("a report the database lacks", func(t *testing.T) {
		res := run(t, p, at(last, want...), func(c *Config) { c.Reports = []string{"people"} })
		if !res.Equal() {
			t.Errorf("result %+v", res)
		}
		results, err := Run(context.Background(), Config{JetStream: p.js, DB: at(last), Reports: []string{"clubs"}})
		if err != nil || len(results) != 1 || !errors.Is(results[0].Err, ErrNotMaterialized) {
			t.Errorf("results %+v, %v: want clubs not materialized", results, err)
		}
	})
	t.Run("an empty database", func(t *testing.T) {
		db := &fakeDB{PositionsFunc: func(context.Context) (map[string]uint64, error) { return map[string]uint64{"#stream": 1}, nil }}
		if _, err := Run(context.Background(), Config{JetStream: p.js, DB: db}); !errors.Is(err, ErrNoReports) {
			t.Errorf("Run on an empty database: %v, want ErrNoReports", err)
		}
	})
	t.Run("a stream that lost the events after the checkpoint", func(t *testing.T) {
		p.checkpoint(3)
		s, err := p.js.Stream(context.Background(), event.DefaultStream)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Purge(context.Background(), jetstream.WithPurgeSequence(6)); err != nil {
			t.Fatal(err)
		}
		res := run(t, p, at(last, want...), func(c *Config) { c.Attempts = 2 })
		if !errors.Is(res.Err, ErrUnsettled) || !errors.Is(res.Err, ErrTrimmed) {
			t.Errorf("result %+v, want unsettled: trimmed", res)
		}
	})
}
