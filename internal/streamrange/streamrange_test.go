package streamrange_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/internal/streamrange"
	"github.com/cometstream/cometstream/internal/testenv"
)

// stream makes a stream of n messages.
func stream(t *testing.T, n int) jetstream.JetStream {
	t.Helper()
	srv := testenv.StartNATS(t, t.TempDir())
	_, js := testenv.Connect(t, srv.ClientURL())
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		js.PublishAsync("s."+strconv.Itoa(i%3), []byte(strconv.Itoa(i)))
	}
	<-js.PublishAsyncComplete()
	return js
}

func consumers(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	s, err := js.Stream(context.Background(), "S")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range s.ListConsumers(context.Background()).Info() {
		names = append(names, n.Name)
	}
	return names
}

// TestNamedReadsInOrderAndLeavesNothing reads a range of several batches:
// every message once, in order, through consumers carrying the name, none
// of which is left when Named returns.
func TestNamedReadsInOrderAndLeavesNothing(t *testing.T) {
	js := stream(t, 2*streamrange.BatchSize+17)
	var seen []uint64
	var during []string
	n, err := streamrange.Named(context.Background(), js, "S", "cometstream-test-range", jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: 11,
	}, func(m jetstream.Msg) error {
		md, _ := m.Metadata()
		seen = append(seen, md.Sequence.Stream)
		if len(seen) == 1 || len(seen) == streamrange.BatchSize+1 {
			during = append(during, consumers(t, js)...)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := 2*streamrange.BatchSize + 7; n != want || len(seen) != want {
		t.Fatalf("read %d messages (%d seen), want %d", n, len(seen), want)
	}
	for i, seq := range seen {
		if seq != uint64(11+i) {
			t.Fatalf("message %d has sequence %d, want %d", i, seq, 11+i)
		}
	}
	if len(during) == 0 {
		t.Fatal("no consumer on the stream while reading")
	}
	for _, name := range during {
		if !strings.HasPrefix(name, "cometstream-test-range-") {
			t.Errorf("consumer %q while reading: want the name cometstream-test-range-…", name)
		}
	}
	if left := consumers(t, js); len(left) > 0 {
		t.Errorf("consumers left after the read: %v", left)
	}
}

// TestNamedLeavesNothingOnError: a read stopped by its callback or by its
// context deletes its consumer too.
func TestNamedLeavesNothingOnError(t *testing.T) {
	js := stream(t, 50)
	stop := errors.New("stop")
	_, err := streamrange.Named(context.Background(), js, "S", "cometstream-test-range", jetstream.OrderedConsumerConfig{}, func(jetstream.Msg) error { return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("error %v, want the callback's", err)
	}
	if left := consumers(t, js); len(left) > 0 {
		t.Errorf("consumers left after the callback failed: %v", left)
	}

	ctx, cancel := context.WithCancel(context.Background())
	_, err = streamrange.Named(ctx, js, "S", "cometstream-test-range", jetstream.OrderedConsumerConfig{}, func(jetstream.Msg) error {
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if left := consumers(t, js); len(left) > 0 {
		t.Errorf("consumers left after the context ended: %v", left)
	}
}
