package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
)

// Without ha, one producer writes a stream: a second with the same
// configuration would publish a second copy of every change and spend the
// COMET users' budgets twice. The producer that writes the stream says so
// in the state bucket, under event.WriterKey, and renews the record every
// writerBeat; another producer that finds a record renewed recently (its
// revision moving) refuses to start and names the first. A record left by
// a producer that died stops moving and is taken over; one left by this
// producer's own earlier life (the same instance id) is taken over at once.

// ErrStreamInUse is wrapped by the error of a producer that found another
// one writing the stream; the error is a *StreamInUseError.
var ErrStreamInUse = errors.New("another producer writes this stream")

// ErrWriterLost means another producer took over the stream while this one
// ran (this one was paused or cut off past writerStale): it stops.
var ErrWriterLost = errors.New("another producer took over the stream")

// writerBeat is how often the writer renews its record; writerStale is how
// long a record must stand still before another producer takes it over.
const (
	writerBeat  = 2 * time.Second
	writerStale = 3 * writerBeat
)

// WriterRecord says which producer writes a stream.
type WriterRecord struct {
	Instance string    `json:"instance"`
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Since    time.Time `json:"since"`
	// HA is true for producers sharing the stream through leases.
	HA bool `json:"ha,omitempty"`
}

// StreamInUseError names the producer that writes the stream.
type StreamInUseError struct {
	Stream string
	Holder WriterRecord
}

func (e *StreamInUseError) Error() string {
	h := e.Holder
	who := fmt.Sprintf("producer %s (pid %d on %s, since %s)", h.Instance, h.PID, h.Host, h.Since.Format(time.RFC3339))
	if h.HA {
		who = "producers sharing it with ha (" + who + " among them)"
	}
	return fmt.Sprintf("stream %s: %v: %s; two producers without ha would publish every change twice and share COMET's rate limit: stop the other, or set ha.lease_ttl in every producer's configuration to share the reports",
		e.Stream, ErrStreamInUse, who)
}

func (e *StreamInUseError) Unwrap() error { return ErrStreamInUse }

// writer is this producer's claim on the stream.
type writer struct {
	p   *Producer
	rec WriterRecord
	rev uint64
}

// claimStream makes this producer the stream's writer, or returns a
// *StreamInUseError. With leases it only checks that no producer without
// ha writes the stream.
func (p *Producer) claimStream(ctx context.Context) (*writer, error) {
	host, _ := os.Hostname()
	w := &writer{p: p, rec: WriterRecord{Instance: p.cfg.InstanceID, Host: host, PID: os.Getpid(), Since: p.cfg.Now().UTC(), HA: p.cfg.LeaseTTL > 0}}
	if w.rec.Instance == "" {
		w.rec.Instance = host
	}
	for attempt := 0; attempt < 5; attempt++ {
		e, err := p.state.Get(ctx, event.WriterKey)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if w.rec.HA {
				return nil, nil // leases share the stream; nothing to claim
			}
			if err := p.checkNoLeasedProducers(ctx); err != nil {
				return nil, err
			}
			if w.rev, err = p.state.Create(ctx, event.WriterKey, w.value()); err == nil {
				return w, nil
			}
			continue // created by another at the same moment: look again
		case err != nil:
			return nil, fmt.Errorf("read the stream's writer: %w", err)
		}
		var held WriterRecord
		_ = json.Unmarshal(e.Value(), &held)
		if held.Instance != w.rec.Instance {
			p.cfg.Logger.Info("another producer claims the stream: watching whether it renews its claim before taking it over",
				"holder", held.Instance, "host", held.Host, "for", writerStale)
		}
		if held.Instance != w.rec.Instance && p.moving(ctx, e.Revision()) {
			return nil, &StreamInUseError{Stream: p.cfg.Stream, Holder: held}
		}
		if err := ctx.Err(); err != nil {
			// Stopped while watching the record: it was not seen to stand
			// still, so it is not ours to take over.
			return nil, fmt.Errorf("claim stream %s: %w", p.cfg.Stream, err)
		}
		if w.rec.HA {
			// A solo producer died, or it was ourselves: its record goes.
			_ = p.state.Delete(ctx, event.WriterKey, jetstream.LastRevision(e.Revision()))
			return nil, nil
		}
		if w.rev, err = p.state.Update(ctx, event.WriterKey, w.value(), e.Revision()); err == nil {
			if held.Instance != w.rec.Instance {
				p.cfg.Logger.Warn("took over the stream from a producer that stopped renewing its claim", "previous", held.Instance, "host", held.Host)
			}
			return w, nil
		}
	}
	return nil, fmt.Errorf("claim stream %s: the writer record keeps changing", p.cfg.Stream)
}

// moving reports whether the record's revision changes within writerStale.
func (p *Producer) moving(ctx context.Context, rev uint64) bool {
	deadline := time.Now().Add(writerStale)
	for time.Now().Before(deadline) {
		if !sleepCtx(ctx, writerBeat/4) {
			return false
		}
		e, err := p.state.Get(ctx, event.WriterKey)
		if err != nil || e.Revision() != rev {
			return err == nil
		}
	}
	return false
}

// checkNoLeasedProducers refuses a solo producer while producers with
// leases announce themselves.
func (p *Producer) checkNoLeasedProducers(ctx context.Context) error {
	kv, err := p.js.KeyValue(ctx, LeaseBucketName(p.cfg.Prefix))
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lease bucket: %w", err)
	}
	lister, err := kv.ListKeysFiltered(ctx, producerKeyPrefix+"*")
	if err != nil {
		return nil // no keys
	}
	for k := range lister.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue
		}
		return &StreamInUseError{Stream: p.cfg.Stream, Holder: WriterRecord{Instance: k[len(producerKeyPrefix):], Host: "?", Since: e.Created(), HA: true}}
	}
	return nil
}

func (w *writer) value() []byte {
	b, _ := json.Marshal(w.rec)
	return b
}

// renew keeps the claim until ctx ends, then lets it go. It returns
// ErrWriterLost when another producer took it over.
func (w *writer) renew(ctx context.Context) error {
	t := time.NewTicker(writerBeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = w.p.state.Delete(dctx, event.WriterKey, jetstream.LastRevision(w.rev))
			cancel()
			return nil
		case <-t.C:
		}
		rev, err := w.p.state.Update(ctx, event.WriterKey, w.value(), w.rev)
		if err == nil {
			w.rev = rev
			continue
		}
		if ctx.Err() != nil {
			continue
		}
		if errors.Is(err, jetstream.ErrKeyExists) { // the revision moved: not ours
			return ErrWriterLost
		}
		w.p.cfg.Logger.Warn("could not renew the claim on the stream; retrying", "err", explainNATS(w.p.cfg.Conn, err))
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
