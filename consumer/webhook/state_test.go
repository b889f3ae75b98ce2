package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/testenv"
)

// startBridge runs a bridge with options; done receives what Run returned.
func startBridge(t *testing.T, js jetstream.JetStream, cfg *Config, o Options) (*Bridge, *prometheus.Registry, <-chan error, func()) {
	t.Helper()
	reg := prometheus.NewRegistry()
	o.JetStream, o.Registerer = js, reg
	b, err := New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return b, reg, done, stop
}

// switchable answers every delivery with the status it is set to.
type switchable struct {
	mu     sync.Mutex
	status int
}

func (s *switchable) set(status int) { s.mu.Lock(); s.status = status; s.mu.Unlock() }

func (s *switchable) answer(delivery, int) (int, http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status, nil
}

// waitRecord waits for an endpoint's disablement naming an event.
func waitRecord(t *testing.T, js jetstream.JetStream, endpoint, eventID string) Disablement {
	t.Helper()
	var d Disablement
	waitFor(t, "the disablement of "+endpoint+" for "+eventID, func() bool {
		kv, err := js.KeyValue(context.Background(), BucketName(event.DefaultPrefix))
		if err != nil {
			return false
		}
		e, err := kv.Get(context.Background(), EndpointKey(endpoint))
		if err != nil {
			return false
		}
		d = Disablement{}
		return json.Unmarshal(e.Value(), &d) == nil && d.EventID == eventID
	})
	return d
}

// TestGoneIsRemembered: a 410 Gone disables the endpoint in NATS; the
// bridge keeps running (not ready while it was the only endpoint); a
// restarted bridge sends it nothing while another endpoint goes on; Enable
// makes a running bridge deliver its waiting events, without a restart.
func TestGoneIsRemembered(t *testing.T) {
	_, js := stream(t)
	ctx := context.Background()
	sw := &switchable{status: 410}
	crm := newReceiver(t, sw.answer)
	only := endpointYAML("crm", crm.URL, "")
	e1 := publish(t, js, "players", 1, event.OpCreated)

	b, reg, done, stop := startBridge(t, js, parse(t, only), Options{})
	d := waitRecord(t, js, "crm", e1)
	if d.Status != 410 || d.DisabledAt.IsZero() || d.Reason == "" {
		t.Errorf("disablement %+v: want the status, the time and a reason", d)
	}
	waitFor(t, "not ready with the only endpoint disabled", func() bool { return !b.Ready() })
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) once its only endpoint was disabled", err)
	default:
	}
	sw.set(200)
	got, err := b.Enable(ctx, "crm")
	if err != nil || got == nil || got.EventID != e1 {
		t.Fatalf("Enable: %+v, %v; want the record of %s", got, err, e1)
	}
	waitFor(t, "the waiting event delivered after Enable", func() bool {
		return testutil.ToFloat64(mustCounter(reg, "cometstream_webhook_deliveries_total", "crm", "delivered")) == 1
	})
	waitFor(t, "ready again", b.Ready)
	sw.set(410)
	e2 := publish(t, js, "players", 2, event.OpCreated)
	waitRecord(t, js, "crm", e2)
	stop()

	// Restarted, with a second endpoint as the sentinel.
	fine := newReceiver(t, nil)
	logs := &testenv.Buffer{}
	cfg := parse(t, only+fmt.Sprintf("  - {name: fine, url: %s, secrets: [%s]}\n", fine.URL, secretNew))
	b2, reg2, _, stop2 := startBridge(t, js, cfg, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	waitConsumer(t, js, "webhook_fine")
	before := len(crm.deliveries())
	e3 := publish(t, js, "players", 3, event.OpCreated)
	waitFor(t, "the sentinel endpoint's delivery", func() bool { return fine.count(e3) == 1 })
	if n := len(crm.deliveries()) - before; n != 0 {
		t.Errorf("the disabled endpoint got %d deliveries after a restart", n)
	}
	if n := testutil.ToFloat64(mustCounter(reg2, "cometstream_webhook_attempts_total", "crm", "410")); n != 0 {
		t.Errorf("%v attempts to the disabled endpoint after a restart", n)
	}
	if !b2.Ready() {
		t.Error("not ready although the sentinel endpoint is enabled")
	}
	if s := logs.String(); !strings.Contains(s, "endpoint is disabled") || !strings.Contains(s, "sink webhook enable --nats URL --config FILE --endpoint crm") {
		t.Errorf("the start-up logs do not say crm is disabled and how to enable it:\n%s", s)
	}
	listed, err := ListDisabled(ctx, js, event.DefaultPrefix)
	if err != nil || len(listed) != 1 || listed[0].Endpoint != "crm" || listed[0].EventID != e2 || listed[0].Status != 410 {
		t.Errorf("ListDisabled: %+v, %v; want crm for %s", listed, err, e2)
	}

	sw.set(200)
	if got, err := b2.Enable(ctx, "crm"); err != nil || got == nil || got.EventID != e2 {
		t.Fatalf("Enable: %+v, %v", got, err)
	}
	waitFor(t, "the running bridge delivering crm's waiting events", func() bool {
		return testutil.ToFloat64(mustCounter(reg2, "cometstream_webhook_deliveries_total", "crm", "delivered")) == 2 && crm.count(e3) == 1
	})
	if got, err := b2.Enable(ctx, "crm"); got != nil || err != nil {
		t.Errorf("Enable of an enabled endpoint: %+v, %v; want nothing done", got, err)
	}
	if _, err := b2.Enable(ctx, "nosuch"); !errors.Is(err, ErrUnknownEndpoint) {
		t.Errorf("Enable of an unknown endpoint: %v", err)
	}
	if listed, err := ListDisabled(ctx, js, event.DefaultPrefix); err != nil || len(listed) != 0 {
		t.Errorf("ListDisabled after Enable: %+v, %v", listed, err)
	}
	stop2()
}

// TestResetRefusedWhileConsuming: Reset will not delete the consumer a
// running bridge delivers from; stopped, it deletes it and the record.
func TestResetRefusedWhileConsuming(t *testing.T) {
	_, js := stream(t)
	ctx := context.Background()
	rcv := newReceiver(t, func(delivery, int) (int, http.Header) { return 500, nil })
	cfg := parse(t, fmt.Sprintf("allow_private: [127.0.0.0/8]\nendpoints:\n  - {name: crm, url: %s, secrets: [%s], retry: [1h]}\n", rcv.URL, secretNew))
	_, _, _, stop := startBridge(t, js, cfg, Options{})
	c := waitConsumer(t, js, "webhook_crm")
	id := publish(t, js, "players", 1, event.OpCreated)
	waitFor(t, "the failed attempt", func() bool { return rcv.count(id) == 1 })
	waitFor(t, "the bridge's pull request", func() bool {
		info, err := c.Info(ctx)
		return err == nil && info.NumWaiting > 0
	})
	other, err := New(parse(t, fmt.Sprintf("allow_private: [127.0.0.0/8]\nendpoints:\n  - {name: crm, url: %s, secrets: [%s], retry: [1h]}\n", rcv.URL, secretNew)), Options{JetStream: js})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Reset(ctx, "crm"); !errors.Is(err, ErrEndpointBusy) {
		t.Fatalf("Reset while a bridge consumes: %v, want ErrEndpointBusy", err)
	}
	if _, err := js.Consumer(ctx, "COMET", "webhook_crm"); err != nil {
		t.Fatalf("the refused reset removed the consumer: %v", err)
	}
	stop()
	// The server drops a stopped bridge's pull request when it sees no one
	// listens for it any more, which takes a moment on a live connection.
	waitFor(t, "the stopped bridge's pull request to go", func() bool {
		info, err := c.Info(ctx)
		return err == nil && info.NumWaiting == 0
	})
	res, err := other.Reset(ctx, "crm")
	if err != nil || !res.Deleted || res.Consumer != "webhook_crm" {
		t.Fatalf("Reset of a stopped endpoint: %+v, %v", res, err)
	}
	if _, err := js.Consumer(ctx, "COMET", "webhook_crm"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("the consumer is still there after Reset: %v", err)
	}
	if _, err := other.Reset(ctx, "nosuch"); !errors.Is(err, ErrUnknownEndpoint) {
		t.Errorf("Reset of an unknown endpoint: %v", err)
	}
}

// TestOrderedRetryEndsWithTheRun: an ordered endpoint waiting in place for
// a retry lets the bridge stop, and hands the event back so that a
// restarted bridge delivers it at once.
func TestOrderedRetryEndsWithTheRun(t *testing.T) {
	_, js := stream(t)
	sw := &switchable{status: 500}
	rcv := newReceiver(t, sw.answer)
	cfg := parse(t, fmt.Sprintf("allow_private: [127.0.0.0/8]\nendpoints:\n  - {name: crm, url: %s, secrets: [%s], ordered: true, retry: [1h], start: all}\n", rcv.URL, secretNew))
	id := publish(t, js, "players", 1, event.OpCreated)
	_, _, _, stop := startBridge(t, js, cfg, Options{})
	waitFor(t, "the failed attempt", func() bool { return rcv.count(id) == 1 })
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	waitFor(t, "Run to return while the retry waits an hour", func() bool {
		select {
		case <-stopped:
			return true
		default:
			return false
		}
	})
	sw.set(200)
	_, reg, _, stop := startBridge(t, js, cfg, Options{})
	waitFor(t, "the handed-back event delivered by the restarted bridge", func() bool {
		return testutil.ToFloat64(mustCounter(reg, "cometstream_webhook_deliveries_total", "crm", "delivered")) == 1
	})
	stop()
}

// noBuckets is a JetStream whose user may not use key-value buckets, as
// a NATS user without the permissions.
type noBuckets struct{ jetstream.JetStream }

var errNoPermission = errors.New("permissions violation")

func (noBuckets) KeyValue(context.Context, string) (jetstream.KeyValue, error) {
	return nil, errNoPermission
}

func (noBuckets) CreateKeyValue(context.Context, jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return nil, errNoPermission
}

// TestWithoutTheBucket: a bridge that cannot use its bucket says so and
// delivers; a 410 then disables the endpoint in this process only.
func TestWithoutTheBucket(t *testing.T) {
	_, js := stream(t)
	gone := newReceiver(t, func(delivery, int) (int, http.Header) { return 410, nil })
	fine := newReceiver(t, nil)
	logs := &testenv.Buffer{}
	cfg := parse(t, endpointYAML("gone", gone.URL, "")+fmt.Sprintf("  - {name: fine, url: %s, secrets: [%s], start: all}\n", fine.URL, secretNew))
	id := publish(t, js, "players", 1, event.OpCreated)
	b, reg, done, stop := startBridge(t, noBuckets{js}, cfg, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	waitFor(t, "the delivery and the 410", func() bool {
		return fine.count(id) == 1 && testutil.ToFloat64(mustCounter(reg, "cometstream_webhook_deliveries_total", "gone", "disabled")) == 1
	})
	waitFor(t, "the 410 logged", func() bool { return strings.Contains(logs.String(), "disabled until the bridge restarts") })
	if !strings.Contains(logs.String(), "cannot keep disabled endpoints in NATS") {
		t.Errorf("the bridge does not say it cannot use its bucket:\n%s", logs.String())
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned: %v", err)
	default:
	}
	if !b.Ready() {
		t.Error("not ready with an endpoint delivering")
	}
	stop()
}

// TestDeletedConsumerIsCreatedAgain: a consumer deleted under a running
// bridge (nats consumer rm) is created again as the endpoint starts, and
// the bridge goes on delivering, instead of waiting for ever.
func TestDeletedConsumerIsCreatedAgain(t *testing.T) {
	_, js := stream(t)
	ctx := context.Background()
	rcv := newReceiver(t, nil)
	var logs testenv.Buffer
	cfg := parse(t, fmt.Sprintf("allow_private: [127.0.0.0/8]\nendpoints:\n  - {name: crm, url: %s, secrets: [%s], retry: [50ms]}\n", rcv.URL, secretNew))
	_, _, _, stop := startBridge(t, js, cfg, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	c := waitConsumer(t, js, "webhook_crm")
	first := publish(t, js, "players", 1, event.OpCreated)
	waitFor(t, "the first delivery", func() bool { return rcv.count(first) == 1 })
	created := c.CachedInfo().Created
	if err := js.DeleteConsumer(ctx, "COMET", "webhook_crm"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the consumer created again", func() bool {
		c, err := js.Consumer(ctx, "COMET", "webhook_crm")
		return err == nil && c.CachedInfo().Created.After(created)
	})
	second := publish(t, js, "players", 2, event.OpCreated)
	waitFor(t, "the delivery after the deletion", func() bool { return rcv.count(second) == 1 })
	stop()
	if !strings.Contains(logs.String(), "consumer was deleted while the bridge delivered") {
		t.Errorf("the deletion was not logged:\n%s", logs.String())
	}
	if rcv.count(first) != 1 {
		t.Errorf("the first event was delivered %d times, want once (start: new)", rcv.count(first))
	}
}
