package consumer

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/testenv"
)

// world starts NATS with the producer's stream and connects to it.
func world(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := testenv.StartStream(t)
	return js
}

// publishRow publishes a created event for person n of a report.
func publishRow(t *testing.T, js jetstream.JetStream, report string, n int) {
	t.Helper()
	token := strconv.Itoa(n)
	after := []byte(fmt.Sprintf(`{"name":"p%d","personId":%d}`, n, n))
	ev := (&event.RowEvent{
		ID: event.ID(report, token, string(event.OpCreated)), Source: "comet://test/" + report, Token: token, Time: time.Now(),
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

// handler records the persons of each batch it is handed, unless refuse
// (if not nil) returns an error for one of them: then it records none of
// the batch and returns that error. refuse runs under the collector's lock.
func (c *collector) handler(refuse func(person int) error) Handler {
	return func(_ context.Context, b []*Message) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if refuse != nil {
			for _, m := range b {
				if err := refuse(c.person(m)); err != nil {
					return err
				}
			}
		}
		for _, m := range b {
			c.ok = append(c.ok, c.person(m))
		}
		return nil
	}
}

func waitFor(t *testing.T, what string, cond func() bool) { testenv.WaitFor(t, what, cond) }

func mustEncode(t *testing.T, report string) []byte {
	b, err := event.Encode("x-"+report, "comet://test/"+report, event.TypeSynced, time.Now(), event.Synced{Report: report, Sync: "s"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
