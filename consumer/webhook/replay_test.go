package webhook

import (
	"context"
	"errors"
	"maps"
	"testing"
)

// TestReplayUnknownEndpoint: an endpoint the configuration lacks is
// refused whether or not the dead-letter stream exists yet, and replaying
// every endpoint without one replays nothing.
func TestReplayUnknownEndpoint(t *testing.T) {
	_, js := stream(t)
	b, err := New(parse(t, endpointYAML("crm", "http://127.0.0.1:1/hook", "")), Options{JetStream: js})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(context.Background(), "COMET_DLQ"); err == nil {
		t.Fatal("the dead-letter stream exists before any dead letter")
	}
	if res, err := b.Replay(context.Background(), "nosuch"); !errors.Is(err, ErrUnknownEndpoint) {
		t.Errorf("replay of an unknown endpoint without a dead-letter stream: %v, %v; want ErrUnknownEndpoint", res, err)
	}
	// Each endpoint asked for is answered, with nothing replayed, so that
	// the command prints "crm: 0 delivered, 0 still failing".
	none := map[string]ReplayResult{"crm": {}}
	if res, err := b.Replay(context.Background(), "crm"); err != nil || !maps.Equal(res, none) {
		t.Errorf("replay of crm without a dead-letter stream: %v, %v; want crm with nothing replayed", res, err)
	}
	if res, err := b.Replay(context.Background(), ""); err != nil || !maps.Equal(res, none) {
		t.Errorf("replay of every endpoint without a dead-letter stream: %v, %v; want crm with nothing replayed", res, err)
	}
}
