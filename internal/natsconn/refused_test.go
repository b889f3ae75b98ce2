package natsconn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

// TestDeleteRefused: a deletion that timed out (the silence of a refused
// request) says what may be the cause; other errors are left as they are.
func TestDeleteRefused(t *testing.T) {
	for _, err := range []error{context.DeadlineExceeded, fmt.Errorf("delete: %w", nats.ErrTimeout)} {
		got := DeleteRefused(err)
		if !errors.Is(got, err) || !strings.Contains(got.Error(), "the subscriber role is not") {
			t.Errorf("%v: %v", err, got)
		}
	}
	other := errors.New("consumer not found")
	if got := DeleteRefused(other); got != other {
		t.Errorf("%v became %v", other, got)
	}
}

// TestRedactURLs: passwords, and a user alone (a token), are hidden in
// each URL of a list; URLs without credentials are kept as written.
func TestRedactURLs(t *testing.T) {
	got := RedactURLs("nats://s3cr3t@a:4222, nats://u:pw-s3cr3t@b:4222,nats://c:4222")
	if strings.Contains(got, "s3cr3t") || got != "nats://xxxxx@a:4222,nats://u:xxxxx@b:4222,nats://c:4222" {
		t.Errorf("RedactURLs: %s", got)
	}
}
