package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/internal/event"
	"github.com/cometstream/cometstream/internal/testenv"
)

// world is a NATS server with the COMET stream and a JetStream handle.
func world(t *testing.T) jetstream.JetStream {
	t.Helper()
	srv := testenv.StartNATS(t, t.TempDir())
	_, js := testenv.Connect(t, srv.ClientURL())
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "COMET", Subjects: []string{"comet.>"}}); err != nil {
		t.Fatal(err)
	}
	return js
}

// publishRow publishes a created event for person n of a report.
func publishRow(t *testing.T, js jetstream.JetStream, report string, n int) {
	t.Helper()
	token := strconv.Itoa(n)
	after := []byte(fmt.Sprintf(`{"name":"p%d","personId":%d}`, n, n))
	ev := (&event.RowEvent{
		ID: event.ID(report, token, "created"), Source: "comet://test/" + report, Token: token, Time: time.Now(),
		Report: report, Op: event.OpCreated, Sync: "s", Key: []byte(`{"personId":` + token + `}`), After: after,
	}).Append(nil)
	msg := nats.NewMsg(event.RowSubject("comet", report, event.OpCreated, token))
	msg.Data = ev
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

// run consumes in the background until the returned stop is called.
func run(t *testing.T, c *Consumer, h Handler) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, h) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// collector records what a handler saw, safely.
type collector struct {
	mu    sync.Mutex
	ok    []int // person numbers of successfully handled messages
	calls int
	times []time.Time
}

func (c *collector) person(m *Message) int {
	n, _ := strconv.Atoi(m.Row.Key["personId"].Raw)
	return n
}

func (c *collector) handled() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.ok)
}

func waitFor(t *testing.T, what string, cond func() bool) { testenv.WaitFor(t, what, cond) }

func TestHandlerErrorIsRetriedWithBackoff(t *testing.T) {
	js := world(t)
	publishRow(t, js, "players", 1)
	c, _ := New(Config{JetStream: js, Durable: "retry", Backoff: []time.Duration{100 * time.Millisecond, 300 * time.Millisecond}})
	col := &collector{}
	stop := run(t, c, func(_ context.Context, b []*Message) error {
		col.mu.Lock()
		defer col.mu.Unlock()
		col.calls++
		col.times = append(col.times, time.Now())
		if col.calls < 3 {
			return errors.New("database is down")
		}
		if b[0].Delivered != 3 {
			t.Errorf("third call sees Delivered %d", b[0].Delivered)
		}
		col.ok = append(col.ok, col.person(b[0]))
		return nil
	})
	waitFor(t, "the third call", func() bool { return len(col.handled()) == 1 })
	stop()
	col.mu.Lock()
	defer col.mu.Unlock()
	// Backoff is jittered between half and one and a half times.
	if gap := col.times[1].Sub(col.times[0]); gap < 50*time.Millisecond {
		t.Errorf("first retry after %s, before the 100ms backoff", gap)
	}
	if gap := col.times[2].Sub(col.times[1]); gap < 150*time.Millisecond {
		t.Errorf("second retry after %s, before the 300ms backoff", gap)
	}
}

func TestPoisonMessageIsDeadLettered(t *testing.T) {
	js := world(t)
	for n := 1; n <= 10; n++ {
		publishRow(t, js, "players", n)
	}
	// Not even JSON: dead-lettered at decode time.
	js.Publish(context.Background(), "comet.players.row.created.99", []byte("{not json"))
	publishRow(t, js, "players", 11)

	c, _ := New(Config{JetStream: js, Durable: "poison", MaxDeliver: 3, Backoff: []time.Duration{time.Millisecond}})
	col := &collector{}
	stop := run(t, c, func(_ context.Context, b []*Message) error {
		col.mu.Lock()
		defer col.mu.Unlock()
		for _, m := range b {
			if col.person(m) == 5 {
				return errors.New("person 5 breaks the handler")
			}
		}
		for _, m := range b {
			col.ok = append(col.ok, col.person(m))
		}
		return nil
	})
	waitFor(t, "message 11", func() bool { return slices.Contains(col.handled(), 11) })
	stop()
	if got, want := col.handled(), []int{1, 2, 3, 4, 6, 7, 8, 9, 10, 11}; !slices.Equal(got, want) {
		t.Errorf("handled %v, want %v (each once, in order)", got, want)
	}
	var dead []jetstream.RawStreamMsg
	s, err := js.Stream(context.Background(), "COMET_DLQ")
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 2; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatalf("dead letter %d: %v", seq, err)
		}
		dead = append(dead, *m)
	}
	if m := dead[0]; m.Subject != "comet_dlq.poison" || m.Header.Get(HeaderDLQReason) != "person 5 breaks the handler" ||
		m.Header.Get(HeaderDLQSubject) != "comet.players.row.created.5" || m.Header.Get(HeaderDLQDelivered) != "3" {
		t.Errorf("dead letter %s %v", m.Subject, m.Header)
	}
	if m := dead[1]; m.Header.Get(HeaderDLQSubject) != "comet.players.row.created.99" || string(m.Data) != "{not json" {
		t.Errorf("undecodable dead letter %v %q", m.Header, m.Data)
	}
}

func TestRestartResumesWithoutRedelivery(t *testing.T) {
	js := world(t)
	for n := 1; n <= 50; n++ {
		publishRow(t, js, "players", n)
	}
	col := &collector{}
	h := func(_ context.Context, b []*Message) error {
		col.mu.Lock()
		defer col.mu.Unlock()
		for _, m := range b {
			col.ok = append(col.ok, col.person(m))
		}
		return nil
	}
	c, _ := New(Config{JetStream: js, Durable: "resume", BatchSize: 7})
	stop := run(t, c, h)
	waitFor(t, "50 messages", func() bool { return len(col.handled()) == 50 })
	stop()
	// The service restarts: its old connection is gone, a new one consumes.
	// (A consumer stopped on a connection that lives on may leave pull
	// requests behind; the server can hand them messages that then come back
	// only after AckWait.)
	url := js.Conn().ConnectedUrl()
	js.Conn().Close()
	_, js2 := testenv.Connect(t, url)
	for n := 51; n <= 70; n++ {
		publishRow(t, js2, "players", n)
	}
	c, _ = New(Config{JetStream: js2, Durable: "resume", BatchSize: 7})
	stop = run(t, c, h)
	waitFor(t, "70 messages", func() bool { return len(col.handled()) >= 70 })
	time.Sleep(200 * time.Millisecond)
	stop()
	got := col.handled()
	for i, n := range got {
		if n != i+1 {
			t.Fatalf("handled %v: not each message once, in order", got)
		}
	}
}

func TestFilters(t *testing.T) {
	js := world(t)
	publishRow(t, js, "players", 1)
	publishRow(t, js, "clubs", 2)
	js.Publish(context.Background(), "comet.players.report.synced", mustEncode(t, "players"))
	publishRow(t, js, "players", 3)
	for _, tt := range []struct {
		reports, ops []string
		want         []string
	}{
		{nil, nil, []string{"comet.players.row.created.1", "comet.clubs.row.created.2", "comet.players.report.synced", "comet.players.row.created.3"}},
		{[]string{"players"}, nil, []string{"comet.players.row.created.1", "comet.players.report.synced", "comet.players.row.created.3"}},
		{nil, []string{"created"}, []string{"comet.players.row.created.1", "comet.clubs.row.created.2", "comet.players.row.created.3"}},
		{[]string{"clubs"}, []string{"created", "synced"}, []string{"comet.clubs.row.created.2"}},
	} {
		c, err := New(Config{JetStream: js, Reports: tt.reports, Ops: tt.ops})
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var got []string
		stop := run(t, c, func(_ context.Context, b []*Message) error {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range b {
				got = append(got, m.Subject)
			}
			return nil
		})
		waitFor(t, "filtered messages", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= len(tt.want) })
		stop()
		if !slices.Equal(got, tt.want) {
			t.Errorf("reports %v ops %v: got %v, want %v", tt.reports, tt.ops, got, tt.want)
		}
	}
	if _, err := New(Config{JetStream: js, Ops: []string{"exploded"}}); err == nil {
		t.Error("an unknown op was accepted")
	}
}

func mustEncode(t *testing.T, report string) []byte {
	b, err := event.Encode("x-"+report, "comet://test/"+report, event.TypeSynced, time.Now(), event.Synced{Report: report, Sync: "s"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
