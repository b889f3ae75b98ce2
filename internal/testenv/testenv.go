package testenv

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/docs"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/natsconn"
	"github.com/cometstream/cometstream/internal/natsserver"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/streamrange"
)

// StartNATS starts an embedded server with JetStream stored in dir, on a
// random loopback port, stopped when the test ends.
func StartNATS(t testing.TB, dir string) *server.Server {
	t.Helper()
	srv, err := natsserver.Start(natsserver.Options{StoreDir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// StartNATSWithRoles starts an embedded server, as StartNATS, with two
// users: "producer" (password "producer-pw") with the producer role and
// "sink" ("sink-pw") with the subscriber role.
func StartNATSWithRoles(t testing.TB) *server.Server {
	t.Helper()
	srv, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Users: []natsserver.User{
		{Name: "producer", Password: "producer-pw", Role: "producer"},
		{Name: "sink", Password: "sink-pw", Role: "subscriber"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// Connect opens a connection that fails publishes while disconnected.
func Connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return ConnectWith(t, natsconn.Options{URL: url, Publisher: true}, slog.New(slog.DiscardHandler))
}

// ConnectWith opens a connection as natsconn.Connect does, closed when the
// test ends, and a JetStream context on it.
func ConnectWith(t testing.TB, opts natsconn.Options, log *slog.Logger) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := natsconn.Connect(opts, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// StartStream starts an embedded server holding the producer's default
// stream (COMET, on comet.>), and no producer, and connects to it.
func StartStream(t testing.TB) (string, jetstream.JetStream) {
	t.Helper()
	srv := StartNATS(t, t.TempDir())
	_, js := Connect(t, srv.ClientURL())
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "COMET", Subjects: []string{"comet.>"}}); err != nil {
		t.Fatal(err)
	}
	return srv.ClientURL(), js
}

// ConnectAs connects to a server of StartNATSWithRoles as one of its users
// ("producer" or "sink").
func ConnectAs(t testing.TB, srv *server.Server, user string) jetstream.JetStream {
	t.Helper()
	_, js := ConnectWith(t, natsconn.Options{URL: srv.ClientURL(), User: user, Password: user + "-pw"}, slog.New(slog.DiscardHandler))
	return js
}

// PostgresDSN returns the test server's DSN, from COMETSTREAM_POSTGRES_DSN.
// Outside CI a test without one skips; in CI (CI=true) it fails.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	d := os.Getenv("COMETSTREAM_POSTGRES_DSN")
	if d == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but COMETSTREAM_POSTGRES_DSN is not set: .ci/run starts a PostgreSQL server and exports it")
		}
		t.Skip("no PostgreSQL: start one with `.ci/postgres.sh` and export COMETSTREAM_POSTGRES_DSN=<the DSN it prints>")
	}
	return d
}

// StartSim serves a simulator over HTTP on loopback.
func StartSim(t testing.TB, cfg simulator.Config) (*simulator.Simulator, string) {
	t.Helper()
	sim, err := simulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(sim.Handler())
	t.Cleanup(hs.Close)
	return sim, hs.URL
}

// Event is one message of the stream, decoded.
type Event struct {
	Seq     uint64
	Subject string
	MsgID   string
	Raw     []byte
	*event.Event
}

// Events reads the stream past a sequence, decoding every message; an
// undecodable message fails the test.
func Events(t testing.TB, js jetstream.JetStream, stream string, after uint64) []Event {
	t.Helper()
	var out []Event
	_, err := streamrange.Read(context.Background(), js, stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: after + 1,
	}, func(m jetstream.Msg) error {
		md, _ := m.Metadata()
		ev, err := event.Decode(m.Data())
		if err != nil {
			t.Fatalf("seq %d %s: %v", md.Sequence.Stream, m.Subject(), err)
		}
		// Every event the tests read is checked against its published
		// JSON Schema, as a downstream service in another language would.
		if err := docs.ValidateEvent(m.Data()); err != nil {
			t.Errorf("seq %d %s does not validate against its schema: %v", md.Sequence.Stream, m.Subject(), err)
		}
		if ct := m.Headers().Get("Content-Type"); ct != event.ContentType {
			t.Errorf("seq %d: Content-Type %q", md.Sequence.Stream, ct)
		}
		out = append(out, Event{Seq: md.Sequence.Stream, Subject: m.Subject(), MsgID: m.Headers().Get(jetstream.MsgIDHeader), Raw: m.Data(), Event: ev})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Canonical renders a row as the contract defines it, independently of the
// producer's encoder: members sorted by key, no HTML escaping.
func Canonical(row event.Row) string {
	if row == nil {
		return "null"
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(map[string]event.Value(row))
	return strings.TrimSuffix(buf.String(), "\n")
}

// Token computes a row's key token from its key columns.
func Token(row event.Row, key []string) string {
	texts := make([]string, len(key))
	for i, k := range key {
		texts[i] = row[k].Raw
	}
	return event.JoinToken(texts...)
}

// Want returns a simulated report's rows by token, canonical: what the
// snapshot bucket and every sink should hold.
func Want(sim *simulator.Simulator, report string) map[string]string {
	key := sim.KeyColumns(report)
	out := map[string]string{}
	for _, row := range sim.Rows(report) {
		out[Token(row, key)] = Canonical(row)
	}
	return out
}

// Chains checks the invariant of the whole stream: every event id is unique;
// for every row key, events alternate created → updated* → deleted, each
// event's before equals the previous event's after, and an update changes
// something. It returns each report's rows as the events leave them.
func Chains(t testing.TB, evs []Event) map[string]map[string]string {
	t.Helper()
	ids := map[string]uint64{}
	state := map[string]map[string]string{}
	for _, ev := range evs {
		if prev, dup := ids[ev.ID]; dup {
			t.Errorf("seq %d repeats the id of seq %d (%s)", ev.Seq, prev, ev.Subject)
		}
		ids[ev.ID] = ev.Seq
		if ev.MsgID != ev.ID {
			t.Errorf("seq %d: Nats-Msg-Id %q, id %q", ev.Seq, ev.MsgID, ev.ID)
		}
		r := ev.Row
		if r == nil {
			continue
		}
		rows := state[r.Report]
		if rows == nil {
			rows = map[string]string{}
			state[r.Report] = rows
		}
		tok := ev.Event.Subject
		cur, exists := rows[tok]
		before, after := Canonical(r.Before), Canonical(r.After)
		// follows checks that the event's before is what the stream last
		// said of the row.
		follows := func(absent, was string) {
			t.Helper()
			if !exists {
				t.Errorf("seq %d: %s %s", ev.Seq, tok, absent)
			} else if before != cur {
				t.Errorf("seq %d: %s %s %s, but the stream last said %s", ev.Seq, tok, was, before, cur)
			}
		}
		switch r.Op {
		case event.OpCreated:
			if exists {
				t.Errorf("seq %d: %s created again without a delete", ev.Seq, tok)
			}
			rows[tok] = after
		case event.OpUpdated:
			follows("updated but never created", "updated from")
			if before == after {
				t.Errorf("seq %d: %s updated with no change", ev.Seq, tok)
			}
			rows[tok] = after
		case event.OpDeleted:
			follows("deleted but not present", "deleted as")
			delete(rows, tok)
		}
	}
	return state
}

// Diff describes how two row sets differ, or returns "" when they are equal.
func Diff(got, want map[string]string) string {
	var b strings.Builder
	n := 0
	for k, w := range want {
		if g, ok := got[k]; !ok {
			n++
			if n <= 5 {
				b.WriteString("missing " + k + "\n")
			}
		} else if g != w {
			n++
			if n <= 5 {
				b.WriteString("differs " + k + ": got " + g + " want " + w + "\n")
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			n++
			if n <= 5 {
				b.WriteString("extra " + k + "\n")
			}
		}
	}
	if n > 5 {
		b.WriteString("…\n")
	}
	return b.String()
}

// Bucket returns a bucket's live keys and values.
func Bucket(t testing.TB, js jetstream.JetStream, name string) map[string]string {
	t.Helper()
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k := range lister.Keys() {
		v, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted since it was listed
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := docs.ValidateSnapshotRow(v.Value()); err != nil {
			t.Errorf("bucket %s key %s does not validate against its schema: %v", name, k, err)
		}
		out[k] = string(v.Value())
	}
	return out
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds the cometstream command once per test process.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cometstream-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "cometstream")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/cometstream")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = &buildError{out: string(out), err: err}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return "go build: " + e.err.Error() + "\n" + e.out }

// WaitFor polls cond until it holds, failing the test after 20 seconds.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitWithin(t, 20*time.Second, what, cond)
}

// WaitWithin is WaitFor with its own deadline, for a condition that a
// server's timer decides (a redelivery after AckWait).
func WaitWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitSettled waits until a durable consumer of stream has acknowledged
// every message it selects: none left to hand out, none handed out.
// From then on the server redelivers nothing, so a test may count what its
// handler saw without waiting for a duplicate that could still come.
func WaitSettled(t testing.TB, js jetstream.JetStream, stream, durable string) {
	t.Helper()
	ctx := context.Background()
	WaitFor(t, "consumer "+durable+" to acknowledge all of "+stream, func() bool {
		c, err := js.Consumer(ctx, stream, durable)
		if err != nil {
			return false
		}
		ci, err := c.Info(ctx)
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0
	})
}

// Churn applies a random change to the simulator every period until the
// returned stop is called.
func Churn(sim *simulator.Simulator, every time.Duration) (stop func()) {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			case <-time.After(every):
				sim.RandomChange()
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// SQLRows reads query results into one map per row, values as database/sql
// scans them.
func SQLRows(t testing.TB, rows *sql.Rows) []map[string]any {
	t.Helper()
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	out := []map[string]any{}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		m := make(map[string]any, len(cols))
		for i, c := range cols {
			m[c] = vals[i]
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
