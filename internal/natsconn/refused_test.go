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
