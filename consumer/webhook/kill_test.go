package webhook

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/testenv"
)

// TestKillMidRetry runs the real bridge, fails every event's first attempt,
// kills the bridge (SIGKILL) while the retries wait, restarts it, and checks
// that every event is delivered, each always under one webhook-id.
func TestKillMidRetry(t *testing.T) {
	url, js := stream(t)
	var mu sync.Mutex
	ok := map[string]bool{}
	idsOfBody := map[string]map[string]bool{}
	rcv := newReceiver(t, func(d delivery, nth int) (int, http.Header) {
		mu.Lock()
		defer mu.Unlock()
		if idsOfBody[string(d.body)] == nil {
			idsOfBody[string(d.body)] = map[string]bool{}
		}
		idsOfBody[string(d.body)][d.id] = true
		if nth == 1 {
			return 500, nil
		}
		ok[d.id] = true
		return 200, nil
	})
	var ids []string
	for n := range 20 {
		ids = append(ids, publish(t, js, "players", n, event.OpCreated))
	}
	cfg := filepath.Join(t.TempDir(), "webhooks.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("allow_private: [127.0.0.0/8]\nendpoints:\n  - {name: crm, url: %s, secrets_env: TEST_WEBHOOK_SECRETS, retry: [4s], start: all}\n", rcv.URL)), 0o600)
	env := []string{"TEST_WEBHOOK_SECRETS=" + secretOld + "," + secretNew}
	args := []string{"sink", "webhook", "--nats", url, "--config", cfg, "--log-format", "json"}

	bridge := testenv.Start(t, "bridge", env, args...)
	waitFor(t, "every first attempt", func() bool { return len(rcv.deliveries()) >= 20 })
	bridge.Kill() // mid-retry: every event waits for its second attempt
	mu.Lock()
	delivered := len(ok)
	mu.Unlock()
	if delivered != 0 {
		for _, d := range rcv.deliveries() {
			t.Logf("%s %s", d.at.Format("15:04:05.000"), d.id)
		}
		t.Logf("%s", bridge.Tail(3000))
		t.Fatalf("%d events delivered before the kill; the test meant to kill mid-retry", delivered)
	}
	// Restart once the server has dropped the killed bridge's pull
	// requests, as a bridge restarted by systemd after a crash would find.
	c := waitConsumer(t, js, "webhook_crm")
	waitFor(t, "the killed bridge's pull requests to go", func() bool {
		info, err := c.Info(context.Background())
		return err == nil && info.NumWaiting == 0
	})
	bridge = testenv.Start(t, "bridge", env, args...)
	// An event whose first answer the killed bridge had not yet turned
	// into a delayed retry comes back only after the consumer's AckWait
	// (the endpoint's timeout, 15s, and 30s).
	testenv.WaitWithin(t, time.Minute, "every event delivered", func() bool { mu.Lock(); defer mu.Unlock(); return len(ok) == 20 })
	if err := bridge.Stop(); err != nil {
		t.Errorf("bridge: %v\n%s", err, bridge.Tail(2000))
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if !ok[id] {
			t.Errorf("event %s was never delivered", id)
		}
	}
	for body, set := range idsOfBody {
		if len(set) != 1 {
			t.Errorf("one event went out under %d webhook-ids: %v (%.60s…)", len(set), set, body)
		}
	}
	if s := bridge.Logs(); strings.Contains(s, secretOld) || strings.Contains(s, secretNew) {
		t.Error("a webhook secret appears in the bridge's logs")
	}
}
