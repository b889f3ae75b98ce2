package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/consumer/webhook"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/testenv"
)

var whSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("cli-webhook-secret-0123456789"))

// whEnv is the environment of the bridges of these tests.
var whEnv = []string{"TEST_WEBHOOK_SECRET=" + whSecret}

// whPublish publishes a created-row event of a report and returns its id.
func whPublish(t *testing.T, js jetstream.JetStream, report string, n int) string {
	t.Helper()
	tok := strconv.Itoa(n)
	id := fmt.Sprintf("%s-%d-%d", report, n, time.Now().UnixNano())
	e := &event.RowEvent{ID: id, Source: "comet://test/" + report, Token: tok, Time: time.Now(), Report: report, Op: event.OpCreated, Sync: "s",
		Key: []byte(`{"id":` + tok + `}`), After: []byte(`{"id":` + tok + `}`)}
	msg := nats.NewMsg(event.RowSubject("comet", report, event.OpCreated, tok))
	msg.Data = e.Append(nil)
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	return id
}

// whReceiver counts the deliveries of each webhook-id and answers with the
// status it is set to.
type whReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	status   int
	attempts map[string]int
	ok       map[string]int
}

func newWHReceiver(t *testing.T, status int) *whReceiver {
	r := &whReceiver{status: status, attempts: map[string]int{}, ok: map[string]int{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		id := req.Header.Get("webhook-id")
		r.mu.Lock()
		status := r.status
		r.attempts[id]++
		if status/100 == 2 {
			r.ok[id]++
		}
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *whReceiver) set(status int) { r.mu.Lock(); r.status = status; r.mu.Unlock() }

// delivered is how often an event was answered 2xx.
func (r *whReceiver) delivered(id string) int { r.mu.Lock(); defer r.mu.Unlock(); return r.ok[id] }

// total is how many attempts were made, and to how many events.
func (r *whReceiver) total() (attempts, events int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.attempts {
		attempts += n
	}
	return attempts, len(r.attempts)
}

// consumerInfo is a consumer's info, nil when it does not exist.
func consumerInfo(t *testing.T, js jetstream.JetStream, name string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := js.Consumer(context.Background(), "COMET", name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// disabledFor waits for an endpoint's disablement naming an event.
func disabledFor(t *testing.T, js jetstream.JetStream, endpoint, eventID string) {
	t.Helper()
	testenv.WaitFor(t, endpoint+" disabled for "+eventID, func() bool {
		ds, err := webhook.ListDisabled(context.Background(), js, "comet")
		return err == nil && len(ds) == 1 && ds[0].Endpoint == endpoint && ds[0].EventID == eventID && ds[0].Status == 410
	})
}

// TestWebhookGoneRemembered runs the real bridge: a 410 disables its only
// endpoint, the process keeps running and /readyz answers 503, status names
// the endpoint, enable resumes it in the running bridge; a restarted bridge
// sends the disabled endpoint nothing while a sentinel endpoint receives.
func TestWebhookGoneRemembered(t *testing.T) {
	url, js := testenv.StartStream(t)
	stateBucket(t, js)
	crm := newWHReceiver(t, 200)
	only := fmt.Sprintf("allow_private: [127.0.0.0/8]\nendpoints:\n  - {name: crm, url: %s, secrets_env: TEST_WEBHOOK_SECRET, retry: [50ms]}\n", crm.URL)
	cfg := writeFile(t, "webhooks.yaml", only)
	args := []string{"sink", "webhook", "--nats", url, "--config", cfg, "--log-format", "json"}

	bridge := testenv.Start(t, "bridge", whEnv, append(args, "--http", "127.0.0.1:0")...)
	addr := opsAddr(t, bridge)
	testenv.WaitFor(t, "crm's consumer", func() bool { return consumerInfo(t, js, "webhook_crm") != nil })
	e0 := whPublish(t, js, "players", 0)
	testenv.WaitFor(t, "a delivery, then ready", func() bool { return crm.delivered(e0) == 1 && readyz(addr) == 200 })
	crm.set(410)
	e1 := whPublish(t, js, "players", 1)
	disabledFor(t, js, "crm", e1)
	testenv.WaitFor(t, "/readyz 503 with the only endpoint disabled", func() bool { return readyz(addr) == 503 })

	status, out := runBin(t, nil, "status", "--nats", url)
	if status != 1 || !strings.Contains(out, "webhook crm: DISABLED since ") || !strings.Contains(out, "(HTTP 410); cometstream sink webhook enable --nats URL --config FILE --endpoint crm") ||
		!strings.Contains(out, "need attention: webhook crm (disabled)") {
		t.Errorf("status: exit %d, does not name crm disabled (exit 1):\n%s", status, out)
	}
	if status, out := runBin(t, whEnv, "sink", "webhook", "enable", "--nats", url, "--config", cfg, "--endpoint", "nosuch"); status != 2 || !strings.Contains(out, "--endpoint") || !strings.Contains(out, "nosuch") {
		t.Errorf("enable --endpoint nosuch: exit %d, want 2 naming --endpoint:\n%s", status, out)
	}
	crm.set(200)
	if status, out := runBin(t, whEnv, "sink", "webhook", "enable", "--nats", url, "--config", cfg, "--endpoint", "crm"); status != 0 || !strings.Contains(out, "enabled crm") {
		t.Fatalf("enable --endpoint crm: exit %d\n%s", status, out)
	}
	// The same process, still running, delivers the waiting event.
	testenv.WaitFor(t, "the waiting event delivered by the running bridge", func() bool { return crm.delivered(e1) == 1 && readyz(addr) == 200 })
	if status, out := runBin(t, whEnv, "sink", "webhook", "enable", "--nats", url, "--config", cfg, "--endpoint", "crm"); status != 0 || !strings.Contains(out, "not disabled") {
		t.Errorf("enable of an enabled endpoint: exit %d\n%s", status, out)
	}
	crm.set(410)
	e2 := whPublish(t, js, "players", 2)
	disabledFor(t, js, "crm", e2)
	if err := bridge.Stop(); err != nil {
		t.Errorf("bridge: %v\n%s", err, bridge.Tail(2000))
	}

	// Restarted with a sentinel endpoint: crm gets nothing.
	fine := newWHReceiver(t, 200)
	cfg = writeFile(t, "webhooks2.yaml", only+fmt.Sprintf("  - {name: fine, url: %s, secrets_env: TEST_WEBHOOK_SECRET}\n", fine.URL))
	args = []string{"sink", "webhook", "--nats", url, "--config", cfg, "--log-format", "json"}
	bridge = testenv.Start(t, "bridge", whEnv, args...)
	testenv.WaitFor(t, "the sentinel's consumer", func() bool { return consumerInfo(t, js, "webhook_fine") != nil })
	before, _ := crm.total()
	e3 := whPublish(t, js, "players", 3)
	testenv.WaitFor(t, "the sentinel's delivery", func() bool { return fine.delivered(e3) == 1 })
	if after, _ := crm.total(); after != before {
		t.Errorf("the disabled endpoint got %d attempts after a restart", after-before)
	}
	if logs := bridge.Logs(); !strings.Contains(logs, "endpoint is disabled") || !strings.Contains(logs, "sink webhook enable --nats URL --config FILE --endpoint crm") {
		t.Errorf("the bridge does not say at start that crm is disabled and how to enable it:\n%s", bridge.Tail(3000))
	}
	crm.set(200)
	if status, out := runBin(t, whEnv, "sink", "webhook", "enable", "--nats", url, "--config", cfg, "--endpoint", "crm"); status != 0 {
		t.Fatalf("enable: exit %d\n%s", status, out)
	}
	testenv.WaitFor(t, "crm's waiting events, without a restart", func() bool { return crm.delivered(e2) == 1 && crm.delivered(e3) == 1 })
	if err := bridge.Stop(); err != nil {
		t.Errorf("bridge: %v\n%s", err, bridge.Tail(2000))
	}
}

// TestWebhookPrivateLiteralRefused: a loopback address written in url is
// refused at start, naming the field; allow_private lets it through.
func TestWebhookPrivateLiteralRefused(t *testing.T) {
	url, js := testenv.StartStream(t)
	rcv := newWHReceiver(t, 200)
	ep := fmt.Sprintf("endpoints:\n  - {name: crm, url: %s, secrets_env: TEST_WEBHOOK_SECRET}\n", rcv.URL)
	refused := writeFile(t, "refused.yaml", ep)
	status, out := runBin(t, whEnv, "sink", "webhook", "--nats", url, "--config", refused)
	if status != 2 || !strings.Contains(out, "endpoints[0].url") || !strings.Contains(out, "127.0.0.1") || !strings.Contains(out, "allow_private") {
		t.Errorf("exit %d, want 2 naming endpoints[0].url, the address and allow_private:\n%s", status, out)
	}
	allowed := writeFile(t, "allowed.yaml", "allow_private: [127.0.0.1/32]\n"+ep)
	bridge := testenv.Start(t, "bridge", whEnv, "sink", "webhook", "--nats", url, "--config", allowed)
	testenv.WaitFor(t, "the consumer", func() bool { return consumerInfo(t, js, "webhook_crm") != nil })
	id := whPublish(t, js, "players", 1)
	testenv.WaitFor(t, "the delivery", func() bool { return rcv.delivered(id) == 1 })
	if err := bridge.Stop(); err != nil {
		t.Errorf("bridge: %v\n%s", err, bridge.Tail(2000))
	}
}

// TestWebhookResetUnjams: an endpoint whose window is full of events
// backing off for an hour delivers nothing new, even once its receiver is
// fixed; reset (refused while the bridge runs) drops them, and a restarted
// bridge delivers a new event at once.
func TestWebhookResetUnjams(t *testing.T) {
	url, js := testenv.StartStream(t)
	rcv := newWHReceiver(t, 500)
	cfg := writeFile(t, "webhooks.yaml", fmt.Sprintf("allow_private: [127.0.0.0/8]\nendpoints:\n  - {name: crm, url: %s, secrets_env: TEST_WEBHOOK_SECRET, retry: [1h], concurrency: 16}\n", rcv.URL))
	args := []string{"sink", "webhook", "--nats", url, "--config", cfg, "--log-format", "json", "--log-level", "error"}
	reset := []string{"sink", "webhook", "reset", "--nats", url, "--config", cfg, "--endpoint", "crm"}

	bridge := testenv.Start(t, "bridge", whEnv, args...)
	testenv.WaitFor(t, "the consumer", func() bool { return consumerInfo(t, js, "webhook_crm") != nil })
	const window = 1000 // the consumer's MaxAckPending
	for n := range window {
		whPublish(t, js, "players", n)
	}
	testenv.WaitFor(t, "every event's first attempt", func() bool { _, events := rcv.total(); return events == window })
	testenv.WaitFor(t, "a full window", func() bool { return consumerInfo(t, js, "webhook_crm").NumAckPending == window })

	if status, out := runBin(t, whEnv, reset...); status != 1 || !strings.Contains(out, "stop the bridge") {
		t.Errorf("reset while the bridge runs: exit %d, want 1 saying to stop the bridge:\n%s", status, out)
	}
	if consumerInfo(t, js, "webhook_crm") == nil {
		t.Fatal("the refused reset deleted the consumer")
	}
	if err := bridge.Stop(); err != nil {
		t.Errorf("bridge: %v\n%s", err, bridge.Tail(2000))
	}
	testenv.WaitFor(t, "the stopped bridge's pull requests gone", func() bool { return consumerInfo(t, js, "webhook_crm").NumWaiting == 0 })
	status, out := runBin(t, whEnv, reset...)
	if status != 0 || !strings.Contains(out, "deleted consumer webhook_crm") || !strings.Contains(out, "start: new") {
		t.Fatalf("reset: exit %d\n%s", status, out)
	}
	if consumerInfo(t, js, "webhook_crm") != nil {
		t.Fatal("reset left the consumer")
	}
	if status, out := runBin(t, whEnv, "sink", "webhook", "reset", "--nats", url, "--config", cfg, "--endpoint", "nosuch"); status != 2 || !strings.Contains(out, "--endpoint") {
		t.Errorf("reset --endpoint nosuch: exit %d, want 2 naming --endpoint:\n%s", status, out)
	}

	rcv.set(200)
	bridge = testenv.Start(t, "bridge", whEnv, args...)
	testenv.WaitFor(t, "the new consumer", func() bool { return consumerInfo(t, js, "webhook_crm") != nil })
	fresh := whPublish(t, js, "players", window)
	testenv.WaitFor(t, "the new event, without waiting out the backoff", func() bool { return rcv.delivered(fresh) == 1 })
	if info := consumerInfo(t, js, "webhook_crm"); info.Delivered.Consumer != 1 {
		t.Errorf("the reset consumer delivered %d messages, want only the new event", info.Delivered.Consumer)
	}
	if err := bridge.Stop(); err != nil {
		t.Errorf("bridge: %v\n%s", err, bridge.Tail(2000))
	}
	if status, out := runBin(t, nil, "sink", "webhook", "reset", "--help"); status != 0 || !strings.Contains(out, "dropped") {
		t.Errorf("reset --help: exit %d, does not say pending retries are dropped:\n%s", status, out)
	}
}

// TestWebhookReportsDurableFromStart: --reports limits every endpoint,
// --durable names the consumers, --from-start sends a new endpoint the
// history.
func TestWebhookReportsDurableFromStart(t *testing.T) {
	url, js := testenv.StartStream(t)
	all, teams := newWHReceiver(t, 200), newWHReceiver(t, 200)
	players1 := whPublish(t, js, "players", 1)
	teams1 := whPublish(t, js, "teams", 1)
	cfg := writeFile(t, "webhooks.yaml", fmt.Sprintf(`allow_private: [127.0.0.0/8]
endpoints:
  - {name: all, url: %s, secrets_env: TEST_WEBHOOK_SECRET}
  - {name: teams, url: %s, secrets_env: TEST_WEBHOOK_SECRET, reports: [teams]}
`, all.URL, teams.URL))
	bridge := testenv.Start(t, "bridge", whEnv, "sink", "webhook", "--nats", url, "--config", cfg, "--reports", "players", "--durable", "hooks", "--from-start")
	testenv.WaitFor(t, "consumer hooks_all", func() bool { return consumerInfo(t, js, "hooks_all") != nil })
	players2 := whPublish(t, js, "players", 2)
	testenv.WaitFor(t, "the history and the new event", func() bool { return all.delivered(players1) == 1 && all.delivered(players2) == 1 })
	testenv.WaitFor(t, "nothing left for hooks_all", func() bool {
		info := consumerInfo(t, js, "hooks_all")
		return info.NumPending == 0 && info.NumAckPending == 0
	})
	if err := bridge.Stop(); err != nil {
		t.Errorf("bridge: %v\n%s", err, bridge.Tail(2000))
	}
	if n := all.delivered(teams1); n != 0 {
		t.Errorf("--reports players: a teams event was delivered %d times", n)
	}
	if attempts, _ := teams.total(); attempts != 0 {
		t.Errorf("an endpoint with no report in common with --reports got %d attempts", attempts)
	}
	for _, name := range []string{"webhook_all", "hooks_teams"} {
		if consumerInfo(t, js, name) != nil {
			t.Errorf("consumer %s exists", name)
		}
	}
	teamsOnly := writeFile(t, "teams.yaml", fmt.Sprintf("allow_private: [127.0.0.0/8]\nendpoints:\n  - {name: teams, url: %s, secrets_env: TEST_WEBHOOK_SECRET, reports: [teams]}\n", teams.URL))
	if status, out := runBin(t, whEnv, "sink", "webhook", "--nats", url, "--config", teamsOnly, "--reports", "fees"); status != 2 || !strings.Contains(out, "fees") {
		t.Errorf("--reports with nothing in common: exit %d, want 2:\n%s", status, out)
	}
	if status, out := runBin(t, whEnv, "sink", "webhook", "--nats", url, "--config", cfg, "--durable", "a.b"); status != 2 || !strings.Contains(out, "a.b") {
		t.Errorf("--durable a.b: exit %d, want 2:\n%s", status, out)
	}
	status, out := runBin(t, nil, "sink", "webhook", "--help")
	for _, want := range []string{"-reports", "-durable", "-from-start", "start: all", "410 Gone"} {
		if status != 0 || !strings.Contains(out, want) {
			t.Errorf("sink webhook --help: exit %d, does not mention %q:\n%s", status, want, out)
		}
	}
}

// TestReplayUnknownEndpointIsUsage: replaying an endpoint the webhook
// configuration lacks exits 2 naming it, before NATS is reached (there may
// be no dead-letter stream yet).
func TestReplayUnknownEndpointIsUsage(t *testing.T) {
	cfg := writeFile(t, "hooks.yaml", "allow_private: [127.0.0.0/8]\nendpoints:\n  - name: crm\n    url: http://127.0.0.1:1/hook\n    secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw]\n")
	status, out := runBin(t, nil, "sink", "webhook", "replay", "--nats", "nats://127.0.0.1:1", "--config", cfg, "--endpoint", "nosuch")
	if status != 2 || !strings.Contains(out, `--endpoint: no endpoint "nosuch" in `) || !strings.Contains(out, "(it has crm)") {
		t.Errorf("replay --endpoint nosuch: exit %d, want 2 naming it:\n%s", status, out)
	}
}
