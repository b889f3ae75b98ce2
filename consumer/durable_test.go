package consumer

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/testenv"
)

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
	stop := run(t, c, col.handler(func(person int) error {
		if person == 5 {
			return errors.New("person 5 breaks the handler")
		}
		return nil
	}))
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
	h := col.handler(nil)
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
	// Until the server has seen that connection close, its pull requests
	// stand, and a message handed to one comes back only after AckWait.
	waitFor(t, "the old connection's pull requests to go", func() bool {
		cons, err := js2.Consumer(context.Background(), "COMET", "resume")
		if err != nil {
			return false
		}
		info, err := cons.Info(context.Background())
		return err == nil && info.NumWaiting == 0
	})
	for n := 51; n <= 70; n++ {
		publishRow(t, js2, "players", n)
	}
	c, _ = New(Config{JetStream: js2, Durable: "resume", BatchSize: 7})
	stop = run(t, c, h)
	waitFor(t, "70 messages", func() bool { return len(col.handled()) >= 70 })
	testenv.WaitSettled(t, js2, "COMET", "resume") // no redelivery can follow
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
		name string
		f    Filter
		want []string
	}{
		{"everything", Filter{}, []string{"comet.players.row.created.1", "comet.clubs.row.created.2", "comet.players.report.synced", "comet.players.row.created.3"}},
		{"one report", Filter{Reports: []string{"players"}}, []string{"comet.players.row.created.1", "comet.players.report.synced", "comet.players.row.created.3"}},
		{"one op", Filter{Ops: []event.Op{event.OpCreated}}, []string{"comet.players.row.created.1", "comet.clubs.row.created.2", "comet.players.row.created.3"}},
		{"one kind", Filter{Kinds: []event.ReportKind{event.KindSynced}}, []string{"comet.players.report.synced"}},
		{"report, op and kind", Filter{Reports: []string{"clubs"}, Ops: []event.Op{event.OpCreated}, Kinds: []event.ReportKind{event.KindSynced}}, []string{"comet.clubs.row.created.2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(Config{JetStream: js, Durable: "filter-" + strings.ReplaceAll(tt.name, " ", "-"), Filter: tt.f})
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
			// The last wanted message, then a sentinel published after
			// everything: nothing unwanted can still be on its way.
			waitFor(t, "filtered messages", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= len(tt.want) })
			stop()
			if !slices.Equal(got, tt.want) {
				t.Errorf("filter %+v: got %v, want %v", tt.f, got, tt.want)
			}
		})
	}
	for name, f := range map[string]Filter{
		"unknown op":   {Ops: []event.Op{"exploded"}},
		"unknown kind": {Kinds: []event.ReportKind{"exploded"}},
		"bad report":   {Reports: []string{"a.b"}},
	} {
		if _, err := New(Config{JetStream: js, Durable: "x", Filter: f}); !errors.Is(err, ErrFilter) {
			t.Errorf("%s: %v, want ErrFilter", name, err)
		}
		if _, err := NewReader(ReaderConfig{JetStream: js, Filter: f}); !errors.Is(err, ErrFilter) {
			t.Errorf("reader, %s: %v, want ErrFilter", name, err)
		}
	}
	if _, err := New(Config{JetStream: js}); !errors.Is(err, ErrNoDurable) {
		t.Errorf("no durable name: %v", err)
	}
	if _, err := NewReader(ReaderConfig{}); !errors.Is(err, ErrNoJetStream) {
		t.Errorf("no JetStream: %v", err)
	}
	ops, kinds, err := ParseOps([]string{"created", "synced", "failed"})
	if err != nil || !slices.Equal(ops, []event.Op{event.OpCreated}) || !slices.Equal(kinds, []event.ReportKind{event.KindSynced, event.KindFailed}) {
		t.Errorf("ParseOps: %v %v %v", ops, kinds, err)
	}
	if _, _, err := ParseOps([]string{"exploded"}); err == nil {
		t.Error("ParseOps accepted an unknown name")
	}
}

// ours returns the stacks of goroutines running this package's code (the
// test's own excluded), "" when there are none.
func ours() string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "cometstream/consumer.") && !strings.Contains(g, "consumer.TestRunLeavesNothingRunning") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// TestRunLeavesNothingRunning: when Run returns with an error, the fetch
// callback and the keep-alive goroutine are gone too.
func TestRunLeavesNothingRunning(t *testing.T) {
	js := world(t)
	// The dead-letter stream cannot be created: its subjects are taken.
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"comet_dlq.>"}}); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 600; n++ {
		publishRow(t, js, "players", n)
	}
	c, _ := New(Config{JetStream: js, Durable: "leak", BatchSize: 2, MaxDeliver: 1, AckWait: 300 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := c.Run(ctx, func(context.Context, []*Message) error {
		time.Sleep(250 * time.Millisecond) // past AckWait/3: the keep-alive runs
		return ErrPermanent
	})
	if err == nil || !strings.Contains(err.Error(), "dead-letter stream") {
		t.Fatalf("Run returned %v, want the dead-letter failure", err)
	}
	// The caller's context is still live: nothing may wait on it.
	waitFor(t, "the consumer's goroutines to end", func() bool { return ours() == "" })
}

// TestDeletedConsumerEndsTheRun: a durable consumer deleted under Run and
// RunEach ends them with ErrConsumerGone, naming the server's reason,
// instead of leaving them waiting for messages that never come.
func TestDeletedConsumerEndsTheRun(t *testing.T) {
	js := world(t)
	publishRow(t, js, "players", 1)
	for _, each := range []bool{false, true} {
		name := map[bool]string{false: "Run", true: "RunEach"}[each]
		durable := "gone-" + name
		c, err := New(Config{JetStream: js, Durable: durable})
		if err != nil {
			t.Fatal(err)
		}
		handled := make(chan struct{}, 1)
		done := make(chan error, 1)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			if each {
				done <- c.RunEach(ctx, 2, func(_ context.Context, m *Message) {
					m.Ack()
					handled <- struct{}{}
				})
				return
			}
			done <- c.Run(ctx, func(context.Context, []*Message) error {
				handled <- struct{}{}
				return nil
			})
		}()
		<-handled
		if err := js.DeleteConsumer(context.Background(), "COMET", durable); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if !errors.Is(err, ErrConsumerGone) || !errors.Is(err, jetstream.ErrConsumerDeleted) || !strings.Contains(err.Error(), durable) {
				t.Errorf("%s: %v, want ErrConsumerGone for the deleted consumer", name, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s still runs 20s after its consumer was deleted", name)
		}
	}
}

// TestClosedConnectionEndsTheRun: when the connection closes for good,
// Run, RunEach and Reader.Run return ErrConsumerGone instead of waiting on
// a consumption that can never deliver again.
func TestClosedConnectionEndsTheRun(t *testing.T) {
	url, js := testenv.StartStream(t)
	publishRow(t, js, "players", 1)
	for _, name := range []string{"Run", "RunEach", "Reader.Run"} {
		nc, js := testenv.Connect(t, url)
		handled := make(chan struct{}, 1)
		done := make(chan error, 1)
		batch := func(context.Context, []*Message) error {
			handled <- struct{}{}
			return nil
		}
		switch name {
		case "Reader.Run":
			r, err := NewReader(ReaderConfig{JetStream: js})
			if err != nil {
				t.Fatal(err)
			}
			go func() { done <- r.Run(context.Background(), batch) }()
		default:
			c, err := New(Config{JetStream: js, Durable: "closed-" + strings.ReplaceAll(name, ".", "")})
			if err != nil {
				t.Fatal(err)
			}
			if name == "Run" {
				go func() { done <- c.Run(context.Background(), batch) }()
				break
			}
			go func() {
				done <- c.RunEach(context.Background(), 2, func(_ context.Context, m *Message) {
					m.Ack()
					handled <- struct{}{}
				})
			}()
		}
		<-handled
		nc.Close()
		select {
		case err := <-done:
			if !errors.Is(err, ErrConsumerGone) {
				t.Errorf("%s: %v, want ErrConsumerGone", name, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s still runs 20s after its connection closed", name)
		}
	}
}

// TestConsumerInUseIsNotChanged: a second process with the same durable
// name and another filter does not change the consumer under the first,
// which would then read the other's reports: it waits for the first to
// stop and, when it does not, returns ErrConsumerInUse. Once the first has
// stopped, the second changes the filter and keeps the position.
func TestConsumerInUseIsNotChanged(t *testing.T) {
	js := world(t)
	publishRow(t, js, "players", 1)
	first, err := New(Config{JetStream: js, Durable: "shared", Filter: Filter{Reports: []string{"players"}}})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	ctx, cancel := context.WithCancel(context.Background())
	firstDone := make(chan error, 1)
	go func() {
		firstDone <- first.Run(ctx, func(_ context.Context, batch []*Message) error {
			for _, m := range batch {
				got <- m.Subject
			}
			return nil
		})
	}()
	if r := <-got; r != "comet.players.row.created.1" {
		t.Fatalf("first got %q", r)
	}
	second, err := New(Config{JetStream: js, Durable: "shared", Filter: Filter{Reports: []string{"fees"}}, InUseWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = second.Run(context.Background(), func(context.Context, []*Message) error {
		t.Error("the second consumer ran while the first read the consumer")
		return nil
	})
	if !errors.Is(err, ErrConsumerInUse) || !strings.Contains(err.Error(), "comet.players.") {
		t.Errorf("second: %v, want ErrConsumerInUse naming the first's filter", err)
	}
	info, err := js.Consumer(context.Background(), "COMET", "shared")
	if err != nil {
		t.Fatal(err)
	}
	if f := info.CachedInfo().Config.FilterSubject; !strings.Contains(f, ".players.") {
		t.Errorf("the consumer's filter is %q, changed under its reader", f)
	}
	publishRow(t, js, "fees", 2)
	publishRow(t, js, "players", 3)
	if r := <-got; r != "comet.players.row.created.3" {
		t.Errorf("first got %q after the refusal, want players 3 (and no fees)", r)
	}
	cancel()
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}

	// The first stopped: the second changes the filter, at the position
	// (fees 2 lies behind it, so fees 4 is the next).
	publishRow(t, js, "fees", 4)
	second, err = New(Config{JetStream: js, Durable: "shared", Filter: Filter{Reports: []string{"fees"}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go func() {
		_ = second.Run(ctx2, func(_ context.Context, batch []*Message) error {
			for _, m := range batch {
				got <- m.Subject
			}
			return nil
		})
	}()
	select {
	case r := <-got:
		if r != "comet.fees.row.created.4" {
			t.Errorf("second got %q, want fees 4 (fees 2 lies behind the position)", r)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("the second never read once the first had stopped")
	}
}

// TestReaderGoroutinesStayBounded: a running Reader's goroutines do not
// grow with the batches it hands out (an ordered consumer's Closed starts
// one per call).
func TestReaderGoroutinesStayBounded(t *testing.T) {
	js := world(t)
	r, err := NewReader(ReaderConfig{JetStream: js, BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	handled := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- r.Run(ctx, func(context.Context, []*Message) error {
			handled <- struct{}{}
			return nil
		})
	}()
	publishRow(t, js, "players", 0)
	<-handled
	before := runtime.NumGoroutine()
	for n := 1; n <= 300; n++ {
		publishRow(t, js, "players", n)
		<-handled
	}
	if after := runtime.NumGoroutine(); after > before+20 {
		t.Errorf("%d goroutines after 300 batches, %d before: they grow with the batches", after, before)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
