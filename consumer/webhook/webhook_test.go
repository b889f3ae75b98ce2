package webhook

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/testenv"
)

// stream starts NATS with the producer's stream and returns its URL.
func stream(t *testing.T) (string, jetstream.JetStream) {
	t.Helper()
	return testenv.StartStream(t)
}

var (
	secretOld = "whsec_" + base64.StdEncoding.EncodeToString([]byte("old-secret-0123456789abcdef"))
	secretNew = "whsec_" + base64.StdEncoding.EncodeToString([]byte("new-secret-0123456789abcdef"))
)

// publish publishes a row event of a report for key n and returns its id.
func publish(t *testing.T, js jetstream.JetStream, report string, n int, op event.Op) string {
	t.Helper()
	tok := strconv.Itoa(n)
	id := fmt.Sprintf("%s-%d-%s-%d", report, n, op, time.Now().UnixNano())
	row := []byte(fmt.Sprintf(`{"id":%d,"note":"<&> %s"}`, n, op))
	e := &event.RowEvent{ID: id, Source: "comet://test/" + report, Token: tok, Time: time.Now(), Report: report, Op: op, Sync: "s", Key: []byte(`{"id":` + tok + `}`)}
	switch op {
	case event.OpCreated:
		e.After = row
	case event.OpUpdated:
		e.Before, e.After, e.Changed = row, row, []string{"note"}
	case event.OpDeleted:
		e.Before = row
	}
	msg := nats.NewMsg(event.RowSubject("comet", report, op, tok))
	msg.Data = e.Append(nil)
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	return id
}

// delivery is what a receiver saw.
type delivery struct {
	id, timestamp, signature, contentType string
	body                                  []byte
	at                                    time.Time
}

// receiver is a loopback HTTP endpoint whose answer the test scripts.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []delivery
	answer func(d delivery, nth int) (status int, header http.Header) // nth: how many times this id was seen, from 1
}

func newReceiver(t *testing.T, answer func(d delivery, nth int) (int, http.Header)) *receiver {
	r := &receiver{answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		d := delivery{id: req.Header.Get("webhook-id"), timestamp: req.Header.Get("webhook-timestamp"), signature: req.Header.Get("webhook-signature"),
			contentType: req.Header.Get("Content-Type"), body: body, at: time.Now()}
		r.mu.Lock()
		r.got = append(r.got, d)
		nth := 0
		for _, g := range r.got {
			if g.id == d.id {
				nth++
			}
		}
		r.mu.Unlock()
		status, hdr := 200, http.Header(nil)
		if r.answer != nil {
			status, hdr = r.answer(d, nth)
		}
		for k, v := range hdr {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

func (r *receiver) count(id string) int {
	n := 0
	for _, d := range r.deliveries() {
		if d.id == id {
			n++
		}
	}
	return n
}

func parse(t *testing.T, yaml string) *Config {
	t.Helper()
	c, err := Parse(strings.NewReader(yaml), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// run starts a bridge and returns it with a stop function.
func run(t *testing.T, js jetstream.JetStream, cfg *Config) (*Bridge, *prometheus.Registry, func()) {
	t.Helper()
	reg := prometheus.NewRegistry()
	b, err := New(cfg, Options{JetStream: js, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	return b, reg, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) { testenv.WaitFor(t, what, cond) }

// byName turns an httptest URL (http://127.0.0.1:port) into one that names
// the host, so that only the dial-time guard sees the address.
func byName(u string) string { return strings.Replace(u, "127.0.0.1", "localhost", 1) }

// waitConsumer waits until a bridge created an endpoint's consumer.
func waitConsumer(t *testing.T, js jetstream.JetStream, durable string) jetstream.Consumer {
	t.Helper()
	var c jetstream.Consumer
	waitFor(t, "consumer "+durable, func() bool {
		var err error
		c, err = js.Consumer(context.Background(), "COMET", durable)
		return err == nil
	})
	return c
}

func endpointYAML(name, url, extra string) string {
	return fmt.Sprintf("allow_private: [127.0.0.0/8]\nendpoints:\n  - name: %s\n    url: %s\n    secrets: [%s, %s]\n    retry: [50ms, 50ms, 50ms]\n    start: all\n%s", name, url, secretOld, secretNew, extra)
}

// TestSignaturesVerify checks every delivery with the Standard Webhooks
// reference library, once with the old secret and once with the new one:
// during a rotation both verify.
func TestSignaturesVerify(t *testing.T) {
	_, js := stream(t)
	rcv := newReceiver(t, nil)
	id := publish(t, js, "players", 1, event.OpUpdated)
	_, _, stop := run(t, js, parse(t, endpointYAML("crm", rcv.URL, "")))
	waitFor(t, "a delivery", func() bool { return len(rcv.deliveries()) == 1 })
	stop()
	d := rcv.deliveries()[0]
	stored, _ := js.Stream(context.Background(), "COMET")
	raw, _ := stored.GetMsg(context.Background(), 1)
	if d.id != id || !bytes.Equal(d.body, raw.Data) || d.contentType != "application/cloudevents+json" {
		t.Errorf("delivery id %q body equal %v content type %q", d.id, bytes.Equal(d.body, raw.Data), d.contentType)
	}
	if n := len(strings.Fields(d.signature)); n != 2 {
		t.Errorf("%d signatures, want one per secret", n)
	}
	hdr := http.Header{}
	hdr.Set("webhook-id", d.id)
	hdr.Set("webhook-timestamp", d.timestamp)
	hdr.Set("webhook-signature", d.signature)
	for _, secret := range []string{secretOld, secretNew} {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(d.body, hdr); err != nil {
			t.Errorf("verify with %s…: %v", secret[:10], err)
		}
	}
	wrong, _ := standardwebhooks.NewWebhook("whsec_" + base64.StdEncoding.EncodeToString([]byte("not-the-secret-0123456789")))
	if err := wrong.Verify(d.body, hdr); err == nil {
		t.Error("a wrong secret verified")
	}
	tampered := append(bytes.Clone(d.body), ' ')
	wh, _ := standardwebhooks.NewWebhook(secretNew)
	if err := wh.Verify(tampered, hdr); err == nil {
		t.Error("a tampered body verified")
	}
}

func TestRetriesThenDelivers(t *testing.T) {
	_, js := stream(t)
	rcv := newReceiver(t, func(_ delivery, nth int) (int, http.Header) {
		if nth <= 2 {
			return 500, nil
		}
		return 204, nil
	})
	id := publish(t, js, "players", 1, event.OpCreated)
	b, reg, stop := run(t, js, parse(t, endpointYAML("crm", rcv.URL, "")))
	waitFor(t, "the third attempt", func() bool { return rcv.count(id) == 3 })
	testenv.WaitSettled(t, js, "COMET", b.Durable("crm")) // acknowledged: no attempt can follow
	stop()
	ds := rcv.deliveries()
	if len(ds) != 3 {
		t.Fatalf("%d attempts, want 3", len(ds))
	}
	for _, d := range ds {
		if d.id != id {
			t.Errorf("webhook-id %q changed between attempts", d.id)
		}
	}
	if gap := ds[1].at.Sub(ds[0].at); gap < 40*time.Millisecond {
		t.Errorf("retried after %s, before the 50ms schedule", gap)
	}
	if got := testutil.ToFloat64(mustCounter(reg, "cometstream_webhook_deliveries_total", "crm", "delivered")); got != 1 {
		t.Errorf("delivered metric %v", got)
	}
}

func mustCounter(reg *prometheus.Registry, name, endpoint, label string) prometheus.Collector {
	mfs, _ := reg.Gather()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := 0
			for _, l := range m.GetLabel() {
				if (l.GetName() == "endpoint" && l.GetValue() == endpoint) || l.GetValue() == label {
					match++
				}
			}
			if match == 2 {
				c.Add(m.GetCounter().GetValue())
			}
		}
	}
	return c
}

func TestRetryAfterHonoured(t *testing.T) {
	_, js := stream(t)
	rcv := newReceiver(t, func(_ delivery, nth int) (int, http.Header) {
		if nth == 1 {
			return 429, http.Header{"Retry-After": {"1"}}
		}
		return 200, nil
	})
	id := publish(t, js, "players", 1, event.OpCreated)
	_, _, stop := run(t, js, parse(t, endpointYAML("crm", rcv.URL, "")))
	waitFor(t, "the second attempt", func() bool { return rcv.count(id) == 2 })
	stop()
	ds := rcv.deliveries()
	if gap := ds[1].at.Sub(ds[0].at); gap < 900*time.Millisecond {
		t.Errorf("retried after %s, before Retry-After: 1", gap)
	}
}

func TestGoneDisablesEndpoint(t *testing.T) {
	_, js := stream(t)
	gone := newReceiver(t, func(delivery, int) (int, http.Header) { return 410, nil })
	fine := newReceiver(t, nil)
	publish(t, js, "players", 1, event.OpCreated)
	cfg := parse(t, endpointYAML("gone", gone.URL, "")+fmt.Sprintf("  - name: fine\n    url: %s\n    secrets: [%s]\n    start: all\n", fine.URL, secretNew))
	b, reg, stop := run(t, js, cfg)
	disabled := func() float64 {
		return testutil.ToFloat64(mustCounter(reg, "cometstream_webhook_deliveries_total", "gone", "disabled"))
	}
	// stopped: the endpoint's delivery run has ended, its workers joined.
	stopped := func() bool {
		st := b.byName["gone"]
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.stop == nil && !st.enabledLocked()
	}
	waitFor(t, "the healthy endpoint and the 410", func() bool { return len(fine.deliveries()) == 1 && disabled() >= 1 })
	second := publish(t, js, "players", 2, event.OpCreated)
	waitFor(t, "the second event at the healthy endpoint", func() bool { return len(fine.deliveries()) == 2 })
	waitFor(t, "the disabled endpoint's delivery to stop", stopped)
	stop()
	// Deliveries already under way when the 410 came may finish; nothing
	// published after it reaches the disabled endpoint.
	if n := gone.count(second); n != 0 {
		t.Errorf("the disabled endpoint got an event published after the 410 (%d times)", n)
	}
	if n := len(gone.deliveries()); n != 1 {
		t.Errorf("the gone endpoint got %d attempts, want 1", n)
	}
}

// TestNotFollowedNorHung covers a redirect (not followed), a receiver that
// hangs past the timeout, and one that answers with a huge body.
func TestNotFollowedNorHung(t *testing.T) {
	_, js := stream(t)
	elsewhere := newReceiver(t, nil)
	redirect := newReceiver(t, func(delivery, int) (int, http.Header) { return 302, http.Header{"Location": {elsewhere.URL}} })
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	}))
	defer hang.Close()
	var sent int64
	var sentMu sync.Mutex
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		w.WriteHeader(200)
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for range 160 { // 10 MB
			n, err := w.Write(chunk)
			sentMu.Lock()
			sent += int64(n)
			sentMu.Unlock()
			if err != nil {
				return
			}
		}
	}))
	defer huge.Close()
	publish(t, js, "players", 1, event.OpCreated)
	cfg := parse(t, fmt.Sprintf(`allow_private: [127.0.0.0/8]
endpoints:
  - {name: redirect, url: %s, secrets: [%s], retry: [20ms, 20ms], start: all}
  - {name: hang, url: %s, secrets: [%s], retry: [20ms], timeout: 200ms, start: all}
  - {name: huge, url: %s, secrets: [%s], retry: [20ms], start: all}
`, redirect.URL, secretNew, hang.URL, secretNew, huge.URL, secretNew))
	b, reg, stop := run(t, js, cfg)
	dead := func(ep string) float64 {
		return testutil.ToFloat64(mustCounter(reg, "cometstream_webhook_deliveries_total", ep, "dead_letter"))
	}
	start := time.Now()
	waitFor(t, "redirect and hang dead-lettered, huge delivered", func() bool {
		return dead("redirect") == 1 && dead("hang") == 1 && testutil.ToFloat64(mustCounter(reg, "cometstream_webhook_deliveries_total", "huge", "delivered")) == 1
	})
	stop()
	if n := len(elsewhere.deliveries()); n != 0 {
		t.Errorf("the redirect was followed %d times", n)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %s: the hanging receiver held the bridge", took)
	}
	dlq, _ := js.Stream(context.Background(), "COMET_DLQ")
	for _, ep := range []string{"redirect", "hang"} {
		m, err := dlq.GetLastMsgForSubject(context.Background(), b.DeadLetterSubject(ep))
		if err != nil {
			t.Fatalf("%s dead letter: %v", ep, err)
		}
		t.Logf("%s: status %s, reason %q", ep, m.Header.Get(HeaderStatus), m.Header.Get("Cometstream-Dlq-Reason"))
		if ep == "redirect" && m.Header.Get(HeaderStatus) != "302" {
			t.Errorf("redirect dead letter status %q", m.Header.Get(HeaderStatus))
		}
		if ep == "hang" && !strings.Contains(m.Header.Get("Cometstream-Dlq-Reason"), "Timeout") && !strings.Contains(m.Header.Get("Cometstream-Dlq-Reason"), "deadline") {
			t.Errorf("hang dead letter reason %q", m.Header.Get("Cometstream-Dlq-Reason"))
		}
	}
	sentMu.Lock()
	defer sentMu.Unlock()
	if sent >= 10<<20 {
		t.Errorf("the bridge read the whole 10 MB body (%d bytes sent)", sent)
	}
}

func TestDeadLetterThenReplay(t *testing.T) {
	_, js := stream(t)
	var healthy sync.Mutex
	up := false
	rcv := newReceiver(t, func(delivery, int) (int, http.Header) {
		healthy.Lock()
		defer healthy.Unlock()
		if up {
			return 200, nil
		}
		return 503, nil
	})
	id := publish(t, js, "players", 1, event.OpDeleted)
	cfg := parse(t, endpointYAML("crm", rcv.URL, ""))
	b, reg, stop := run(t, js, cfg)
	waitFor(t, "the dead letter", func() bool {
		return testutil.ToFloat64(mustCounter(reg, "cometstream_webhook_deliveries_total", "crm", "dead_letter")) == 1
	})
	stop()
	if n := rcv.count(id); n != 4 {
		t.Errorf("%d attempts before dead-lettering, want 1 + 3 retries", n)
	}
	dlq, _ := js.Stream(context.Background(), "COMET_DLQ")
	m, err := dlq.GetLastMsgForSubject(context.Background(), b.DeadLetterSubject("crm"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(HeaderStatus) != "503" || m.Header.Get(HeaderAttempts) != "4" || m.Header.Get(HeaderEndpoint) != "crm" {
		t.Errorf("dead letter headers %v", m.Header)
	}
	healthy.Lock()
	up = true
	healthy.Unlock()
	res, err := b.Replay(context.Background(), "crm")
	if err != nil || res["crm"].Delivered != 1 || res["crm"].Failed != 0 {
		t.Fatalf("replay %+v, %v", res, err)
	}
	if ds := rcv.deliveries(); ds[len(ds)-1].id != id {
		t.Errorf("replayed with webhook-id %q, want %q", ds[len(ds)-1].id, id)
	}
	info, _ := dlq.Info(context.Background(), jetstream.WithSubjectFilter(b.DeadLetterSubject("crm")))
	if n := info.State.Subjects[b.DeadLetterSubject("crm")]; n != 0 {
		t.Errorf("%d dead letters left after a successful replay", n)
	}
}

func TestAddressGuard(t *testing.T) {
	_, js := stream(t)
	rcv := newReceiver(t, nil)
	id := publish(t, js, "players", 1, event.OpCreated)
	// A host name, not a literal address (which Validate refuses at
	// start): the guard refuses what it resolves to when it is dialled.
	refused := parse(t, fmt.Sprintf("endpoints:\n  - {name: local, url: %s, secrets: [%s], retry: [20ms], start: all}\n", byName(rcv.URL), secretNew))
	b, reg, stop := run(t, js, refused)
	waitFor(t, "the refusal", func() bool {
		return testutil.ToFloat64(mustCounter(reg, "cometstream_webhook_deliveries_total", "local", "dead_letter")) == 1
	})
	stop()
	if n := len(rcv.deliveries()); n != 0 {
		t.Fatalf("a loopback endpoint was reached %d times without allow_private", n)
	}
	dlq, _ := js.Stream(context.Background(), "COMET_DLQ")
	m, _ := dlq.GetLastMsgForSubject(context.Background(), b.DeadLetterSubject("local"))
	if !strings.Contains(m.Header.Get("Cometstream-Dlq-Reason"), "not allowed") {
		t.Errorf("reason %q does not say the address is not allowed", m.Header.Get("Cometstream-Dlq-Reason"))
	}
	// Allow-listed, the same endpoint works (a new consumer name, so the
	// event is delivered afresh).
	allowed := parse(t, fmt.Sprintf("allow_private: [127.0.0.1/32]\nendpoints:\n  - {name: local2, url: %s, secrets: [%s], start: all}\n", byName(rcv.URL), secretNew))
	_, _, stop = run(t, js, allowed)
	waitFor(t, "the allowed delivery", func() bool { return rcv.count(id) == 1 })
	stop()
	for _, addr := range []string{"169.254.169.254:80", "10.1.2.3:443", "[::1]:80", "[fd00::1]:80", "0.0.0.0:80"} {
		if err := refused.control("tcp", addr, nil); !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("%s: %v, want refused", addr, err)
		}
	}
	if err := refused.control("tcp", "93.184.216.34:443", nil); err != nil {
		t.Errorf("a public address was refused: %v", err)
	}
}

// TestOrdered fails the first event of a key twice; with ordered: true the
// later events of the key are not delivered before it.
func TestOrdered(t *testing.T) {
	_, js := stream(t)
	var mu sync.Mutex
	var order []string
	first := ""
	rcv := newReceiver(t, func(d delivery, nth int) (int, http.Header) {
		mu.Lock()
		defer mu.Unlock()
		if d.id == first && nth <= 2 {
			return 500, nil
		}
		order = append(order, d.id)
		return 200, nil
	})
	mu.Lock()
	first = publish(t, js, "players", 1, event.OpCreated)
	mu.Unlock()
	second := publish(t, js, "players", 1, event.OpUpdated)
	third := publish(t, js, "players", 1, event.OpDeleted)
	_, _, stop := run(t, js, parse(t, endpointYAML("crm", rcv.URL, "    ordered: true\n    concurrency: 8\n")))
	waitFor(t, "three deliveries", func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 3 })
	stop()
	if want := []string{first, second, third}; fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("delivered in order %v, want %v", order, want)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for yaml, field := range map[string]string{
		"endpoints: []\n": "endpoints",
		"endpoints:\n  - {name: a, url: ftp://x, secrets: [" + secretNew + "]}\n":                  "endpoints[0].url",
		"endpoints:\n  - {name: a, url: https://x}\n":                                              "endpoints[0].secrets",
		"endpoints:\n  - {name: a, url: https://x, secrets: [nope]}\n":                             "endpoints[0].secrets[0]",
		"endpoints:\n  - {name: a, url: https://x, secrets_env: NOPE_UNSET}\n":                     "endpoints[0].secrets_env",
		"endpoints:\n  - {name: a, url: https://x, secrets: [" + secretNew + "], types: [x]}\n":    "endpoints[0].types[0]",
		"allow_private: [nonsense]\nendpoints:\n  - {name: a, url: https://x}\n":                   "allow_private[0]",
		"endpoints:\n  - {name: a, url: https://x, secrets: [" + secretNew + "], retries: [1s]}\n": "retries",
	} {
		_, err := Parse(strings.NewReader(yaml), slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%q: error %v does not name %s", yaml, err, field)
		}
	}
}

// TestNewValidatesAConfigBuiltInGo: a Config written in Go gets the same
// checks and defaults as one parsed from a file, and errors an outside
// module can tell apart.
func TestNewValidatesAConfigBuiltInGo(t *testing.T) {
	_, js := stream(t)
	for name, tt := range map[string]struct {
		cfg   Config
		field string
	}{
		"no endpoints":   {Config{}, "endpoints"},
		"no secret":      {Config{Endpoints: []Endpoint{{Name: "crm", URL: "https://x.example"}}}, "endpoints[0].secrets"},
		"bad secret":     {Config{Endpoints: []Endpoint{{Name: "crm", URL: "https://x.example", Secrets: []string{"hunter2"}}}}, "endpoints[0].secrets[0]"},
		"bad type":       {Config{Endpoints: []Endpoint{{Name: "crm", URL: "https://x.example", Secrets: []string{secretNew}, Types: []event.Type{"comet.row.exploded"}}}}, "endpoints[0].types[0]"},
		"bad cidr":       {Config{AllowPrivate: []string{"10.0.0.0"}, Endpoints: []Endpoint{{Name: "crm", URL: "https://x.example", Secrets: []string{secretNew}}}}, "allow_private[0]"},
		"bad name":       {Config{Endpoints: []Endpoint{{Name: "CRM!", URL: "https://x.example", Secrets: []string{secretNew}}}}, "endpoints[0].name"},
		"negative retry": {Config{Endpoints: []Endpoint{{Name: "crm", URL: "https://x.example", Secrets: []string{secretNew}, Retry: []time.Duration{-time.Second}}}}, "endpoints[0].retry[0]"},
		"bad start":      {Config{Endpoints: []Endpoint{{Name: "crm", URL: "https://x.example", Secrets: []string{secretNew}, Start: "beginning"}}}, "endpoints[0].start"},
		"private literal": {Config{Endpoints: []Endpoint{{Name: "a", URL: "https://x.example", Secrets: []string{secretNew}}, {Name: "crm", URL: "http://10.1.2.3:8080/hook", Secrets: []string{secretNew}}}},
			"endpoints[1].url"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(&tt.cfg, Options{JetStream: js})
			var fe *FieldError
			if !errors.Is(err, ErrInvalidConfig) || !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("New: %v, want a FieldError for %s wrapping ErrInvalidConfig", err, tt.field)
			}
		})
	}
	if _, err := New(&Config{}, Options{}); !errors.Is(err, ErrNoJetStream) {
		t.Errorf("no JetStream: %v", err)
	}

	// A valid Config built in Go: defaults filled, deliveries signed, the
	// guard in force.
	rec := newReceiver(t, nil)
	cfg := &Config{AllowPrivate: []string{"127.0.0.0/8"}, Endpoints: []Endpoint{{Name: "crm", URL: rec.URL, Secrets: []string{secretNew}}}}
	_, _, stop := run(t, js, cfg)
	defer stop()
	if ep := cfg.Endpoints[0]; ep.Timeout != 15*time.Second || ep.Concurrency != 4 || len(ep.Retry) != len(DefaultRetry) || cfg.DeadLetterStream != DefaultDeadLetterStream || ep.Start != StartNew {
		t.Errorf("defaults not filled: %+v, dead letters %q", ep, cfg.DeadLetterStream)
	}
	waitConsumer(t, js, "webhook_crm") // start: new delivers what is published from then on
	id := publish(t, js, "players", 1, event.OpCreated)
	waitFor(t, "the delivery", func() bool { return rec.count(id) == 1 })
	d := rec.deliveries()[0]
	wh, _ := standardwebhooks.NewWebhook(secretNew)
	hdr := http.Header{"Webhook-Id": {d.id}, "Webhook-Timestamp": {d.timestamp}, "Webhook-Signature": {d.signature}}
	if err := wh.Verify(d.body, hdr); err != nil || d.signature == "" {
		t.Errorf("delivery signature %q does not verify: %v", d.signature, err)
	}

	// Without the exemption, the loopback receiver is refused: written as
	// an address at start, reached by name when it is dialled.
	if _, err := New(&Config{Endpoints: []Endpoint{{Name: "crm", URL: rec.URL, Secrets: []string{secretNew}}}}, Options{JetStream: js}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New accepted the loopback address of %s without allow_private: %v", rec.URL, err)
	}
	_, js2 := stream(t)
	guarded := &Config{Endpoints: []Endpoint{{Name: "crm", URL: byName(rec.URL), Secrets: []string{secretNew}, Retry: []time.Duration{time.Hour}, Start: StartAll}}}
	_, reg2, stop2 := run(t, js2, guarded)
	defer stop2()
	before := len(rec.deliveries())
	publish(t, js2, "players", 2, event.OpCreated)
	waitFor(t, "a refused attempt", func() bool {
		return testutil.ToFloat64(mustCounter(reg2, "cometstream_webhook_attempts_total", "crm", "error")) >= 1
	})
	if got := len(rec.deliveries()); got != before {
		t.Errorf("the guard let %d deliveries through to loopback", got-before)
	}
}
