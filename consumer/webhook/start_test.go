package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
)

// TestStartNewAndAll: a new endpoint gets the events published from its
// first start on (start: new, the default), or the history too (start:
// all); once its consumer exists, it keeps its position across restarts.
func TestStartNewAndAll(t *testing.T) {
	_, js := stream(t)
	ctx := context.Background()
	fresh, hist := newReceiver(t, nil), newReceiver(t, nil)
	old := publish(t, js, "players", 1, event.OpCreated)
	cfg := parse(t, fmt.Sprintf("allow_private: [127.0.0.0/8]\nendpoints:\n  - {name: fresh, url: %s, secrets: [%s]}\n  - {name: hist, url: %s, secrets: [%s], start: all}\n",
		fresh.URL, secretNew, hist.URL, secretNew))
	_, _, _, stop := startBridge(t, js, cfg, Options{})
	c := waitConsumer(t, js, "webhook_fresh")
	next := publish(t, js, "players", 2, event.OpCreated)
	waitFor(t, "the new event at both, the history at hist", func() bool {
		return fresh.count(next) == 1 && hist.count(next) == 1 && hist.count(old) == 1
	})
	if n := fresh.count(old); n != 0 {
		t.Errorf("start: new got an event published before its first start (%d times)", n)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// One delivery only, from the consumer created at new events: the
	// consumer package kept it rather than recreating it at the beginning.
	if info.Delivered.Consumer != 1 || info.Config.DeliverPolicy != jetstream.DeliverNewPolicy {
		t.Errorf("consumer delivered %d messages with policy %v, want 1 from the new-events consumer", info.Delivered.Consumer, info.Config.DeliverPolicy)
	}
	stop()
	meanwhile := publish(t, js, "players", 3, event.OpCreated)
	_, _, _, stop = startBridge(t, js, cfg, Options{})
	waitFor(t, "the event published while the bridge was stopped", func() bool { return fresh.count(meanwhile) == 1 })
	stop()
	if n := fresh.count(old); n != 0 {
		t.Errorf("a restart sent start: new an event from before its first start (%d times)", n)
	}

	for _, bad := range []string{"beginning", "New"} {
		_, err := Parse(strings.NewReader(fmt.Sprintf("endpoints:\n  - {name: a, url: https://x.example, secrets: [%s], start: %s}\n", secretNew, bad)), nil)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "endpoints[0].start" {
			t.Errorf("start: %s: %v, want a field error for endpoints[0].start", bad, err)
		}
	}
}

// TestOptionsReportsDurableFromStart: Options.Reports limits every endpoint
// (within its own reports), Durable names the consumers, FromStart starts
// new consumers at the beginning.
func TestOptionsReportsDurableFromStart(t *testing.T) {
	_, js := stream(t)
	ctx := context.Background()
	all, teams, mixed := newReceiver(t, nil), newReceiver(t, nil), newReceiver(t, nil)
	players1 := publish(t, js, "players", 1, event.OpCreated)
	teams1 := publish(t, js, "teams", 1, event.OpCreated)
	yaml := fmt.Sprintf(`allow_private: [127.0.0.0/8]
endpoints:
  - {name: all, url: %s, secrets: [%s]}
  - {name: teams, url: %s, secrets: [%s], reports: [teams]}
  - {name: mixed, url: %s, secrets: [%s], reports: [players, fees]}
`, all.URL, secretNew, teams.URL, secretNew, mixed.URL, secretNew)
	b, _, _, stop := startBridge(t, js, parse(t, yaml), Options{Reports: []string{"players"}, Durable: "hooks", FromStart: true})
	c := waitConsumer(t, js, "hooks_all")
	waitConsumer(t, js, "hooks_mixed")
	players2 := publish(t, js, "players", 2, event.OpCreated)
	waitFor(t, "players events from the start at all and mixed", func() bool {
		return all.count(players1) == 1 && all.count(players2) == 1 && mixed.count(players1) == 1 && mixed.count(players2) == 1
	})
	waitFor(t, "nothing left for hooks_all", func() bool {
		info, err := c.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
	stop()
	if n := all.count(teams1); n != 0 {
		t.Errorf("--reports players: a teams event reached an endpoint %d times", n)
	}
	if n := len(teams.deliveries()); n != 0 {
		t.Errorf("an endpoint with no report in common got %d deliveries", n)
	}
	if got := b.Durable("all"); got != "hooks_all" {
		t.Errorf("Durable: %q", got)
	}
	for _, name := range []string{"hooks_teams", "webhook_all", "webhook_mixed"} {
		if _, err := js.Consumer(ctx, "COMET", name); !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Errorf("consumer %s: %v, want none", name, err)
		}
	}

	for name, o := range map[string]Options{
		"durable with a dot":  {Durable: "a.b"},
		"report not a name":   {Reports: []string{"Players!"}},
		"no report in common": {Reports: []string{"fees"}},
	} {
		cfg := parse(t, fmt.Sprintf("endpoints:\n  - {name: a, url: https://x.example, secrets: [%s], reports: [teams]}\n", secretNew))
		o.JetStream = js
		if _, err := New(cfg, o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: %v, want ErrInvalidOptions", name, err)
		}
	}
}

// TestPrivateLiteralRefusedAtStart: a url whose host is an address the
// guard refuses, and allow_private does not cover, is a configuration
// error naming the field, the address and allow_private; a host name is
// left to the dial-time guard.
func TestPrivateLiteralRefusedAtStart(t *testing.T) {
	for _, tt := range []struct {
		name, url, allow, addr string
	}{
		{"loopback", "http://127.0.0.1:8080/hook", "", "127.0.0.1"},
		{"private", "https://10.1.2.3/hook", "", "10.1.2.3"},
		{"ipv6 loopback", "http://[::1]:8080/", "", "::1"},
		{"cloud metadata", "http://169.254.169.254/latest", "", "169.254.169.254"},
		{"ipv6 link-local with zone", "http://[fe80::1%25eth0]/", "", "fe80::1"},
		{"ipv4-mapped", "http://[::ffff:192.168.1.1]/", "", "192.168.1.1"},
		{"allowed loopback", "http://127.0.0.1:8080/hook", "[127.0.0.0/8]", ""},
		{"allowed private", "https://10.1.2.3/hook", "[10.1.0.0/16]", ""},
		{"not allowed by another range", "https://10.1.2.3/hook", "[10.2.0.0/16]", "10.1.2.3"},
		{"host name", "http://localhost:8080/hook", "", ""},
		{"public", "https://93.184.216.34/hook", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			yaml := ""
			if tt.allow != "" {
				yaml = "allow_private: " + tt.allow + "\n"
			}
			yaml += fmt.Sprintf("endpoints:\n  - {name: a, url: https://x.example, secrets: [%s]}\n  - {name: b, url: %q, secrets: [%s]}\n", secretNew, tt.url, secretNew)
			_, err := Parse(strings.NewReader(yaml), slog.New(slog.DiscardHandler))
			if tt.addr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.Is(err, ErrInvalidConfig) || !errors.As(err, &fe) || fe.Field != "endpoints[1].url" {
				t.Fatalf("%v, want a FieldError for endpoints[1].url", err)
			}
			if !strings.Contains(fe.Msg, tt.addr+" ") || !strings.Contains(fe.Msg, "allow_private") {
				t.Errorf("%q does not name the address %s and allow_private", fe.Msg, tt.addr)
			}
		})
	}
}

func TestWithin(t *testing.T) {
	for _, tt := range []struct {
		name          string
		own, selected []string
		want          []string
		none          bool
	}{
		{"nothing selected", []string{"a"}, nil, []string{"a"}, false},
		{"every report of its own", nil, []string{"a", "b"}, []string{"a", "b"}, false},
		{"in common", []string{"a", "c"}, []string{"b", "c"}, []string{"c"}, false},
		{"nothing in common", []string{"a"}, []string{"b"}, nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, none := within(tt.own, tt.selected)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || none != tt.none {
				t.Errorf("within(%v, %v) = %v, %v; want %v, %v", tt.own, tt.selected, got, none, tt.want, tt.none)
			}
		})
	}
}
