package producer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/comet"
	"github.com/cometstream/cometstream/internal/redact"
	"github.com/cometstream/cometstream/internal/statekv"
)

// loadState reads a report's bookkeeping record and its revision (0 when
// there is none yet).
func loadState(ctx context.Context, kv jetstream.KeyValue, report string) (event.ReportState, uint64, error) {
	return statekv.Report(ctx, kv, report)
}

// saveState writes the record if it changed, expecting the revision we last
// saw: a second producer writing the same report makes this fail instead of
// both silently interleaving.
func (r *reporter) saveState(ctx context.Context) error {
	st := r.state
	st.Updated = r.p.cfg.Now().UTC()
	if r.stateRev != 0 && stateEqual(st, r.saved) {
		return nil
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	var rev uint64
	if r.stateRev == 0 {
		rev, err = r.p.state.Create(ctx, r.cfg.Name, b)
	} else {
		rev, err = r.p.state.Update(ctx, r.cfg.Name, b, r.stateRev)
	}
	if err != nil {
		return fmt.Errorf("save state of %s: %w", r.cfg.Name, r.whySaveFailed(err))
	}
	r.stateRev, r.saved = rev, st
	return nil
}

// stateEqual compares everything but the update time.
func stateEqual(a, b event.ReportState) bool {
	a.Updated, b.Updated = time.Time{}, time.Time{}
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// whySaveFailed returns err saying what a failed write of the state record
// means, when that is known: a record that changed behind our back is
// another producer's doing; an outage (no answer either) is only an outage.
func (r *reporter) whySaveFailed(err error) error {
	nc := r.p.cfg.Conn
	switch {
	case errors.Is(err, jetstream.ErrKeyExists):
		return fmt.Errorf("the record changed behind this producer's back (another producer polling the same report?): %w", err)
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return &natsError{why: unreachable(nc), err: err}
	}
	return explainNATS(nc, err)
}

// natsUnreachable reports whether err comes of the connection to NATS
// being down: the client holds what is published while it reconnects,
// and refuses more once that buffer is full ("outbound buffer limit
// exceeded"), which says nothing of the cause to an operator.
func natsUnreachable(nc *nats.Conn, err error) bool {
	return !nc.IsConnected() || errors.Is(err, nats.ErrReconnectBufExceeded) || errors.Is(err, nats.ErrConnectionClosed)
}

// explainNATS returns err saying what it means when NATS is the cause and
// err does not say so yet: the connection is down (and to which server),
// or JetStream has no room to store more.
func explainNATS(nc *nats.Conn, err error) error {
	var explained *natsError
	var fromCOMET *comet.Error
	switch {
	case err == nil || errors.As(err, &explained):
		return err
	case errors.As(err, &fromCOMET):
		return err // COMET failed: NATS may be reconnecting meanwhile, but is not the cause
	case natsUnreachable(nc, err):
		return &natsError{why: unreachable(nc), err: err}
	case natsFull(err):
		return &natsError{why: "NATS has no room to store more (JetStream's disk, its max_file_store or the account's storage limit is full: make room, and the pass is tried again)", err: err}
	}
	return err
}

// natsError is an error NATS caused, with what it means.
type natsError struct {
	why string
	err error
}

func (e *natsError) Error() string { return e.why + ": " + e.err.Error() }
func (e *natsError) Unwrap() error { return e.err }

// unreachable says that NATS is unreachable, and which server.
func unreachable(nc *nats.Conn) string { return "NATS is unreachable (" + serverURL(nc) + ")" }

// natsFull reports whether err is JetStream refusing a write for want of
// storage.
func natsFull(err error) bool {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode {
		case jsInsufficientResources, jsMemoryResourcesExceeded, jsStorageResourcesExceeded:
			return true
		}
	}
	return strings.Contains(err.Error(), "no space left on device")
}

// JetStream's error codes for a full store, which the jetstream package
// does not name.
const (
	jsInsufficientResources    jetstream.ErrorCode = 10023
	jsMemoryResourcesExceeded  jetstream.ErrorCode = 10028
	jsStorageResourcesExceeded jetstream.ErrorCode = 10047
)

// serverURL names the server the connection was made to, password (or
// token) hidden.
func serverURL(nc *nats.Conn) string {
	raw := nc.Opts.Url
	if raw == "" && len(nc.Opts.Servers) > 0 {
		raw = strings.Join(nc.Opts.Servers, ",")
	}
	return redact.URLs(raw)
}
