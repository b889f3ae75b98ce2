package producer

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/cometstream/cometstream/event"
)

// ErrFenced means the stream or a bucket no longer is what this producer
// last saw: another producer has written the report since (this one lost its
// lease, or was paused past it). Nothing of the rejected batch was stored.
var ErrFenced = errors.New("fenced: another producer wrote this report")

// Atomic batch publishing: nats.go has no names for these yet.
const (
	batchIDHeader       = "Nats-Batch-Id"
	batchSequenceHeader = "Nats-Batch-Sequence"
	batchCommitHeader   = "Nats-Batch-Commit"
	// errCodeBatchDuplicate: the batch repeats an event the stream holds,
	// published by another producer (or by us, before a lost
	// acknowledgement).
	errCodeBatchDuplicate jetstream.ErrorCode = 10201
)

// wrongLastSequence reports whether a JetStream error code says an
// expected last sequence did not hold (10164 on replicated streams).
func wrongLastSequence(code jetstream.ErrorCode) bool {
	return code == jetstream.JSErrCodeStreamWrongLastSequence || code == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// kvWrite is a snapshot write that follows an event once the stream has
// acknowledged it: put the canonical row, or delete the key.
type kvWrite struct {
	idx    int32 // the entry in the snapshot index
	token  string
	value  []byte // nil for a delete
	hash   event.Hash
	delete bool
}

// inflight is a publish whose acknowledgement is awaited: a snapshot write,
// or (asyncEvents) an event.
type inflight struct {
	fut   jetstream.PubAckFuture
	write *kvWrite
	isKV  bool
}

// publisher publishes a report's events and, once the stream has stored an
// event, writes its row to the snapshot. The snapshot never runs ahead of
// the stream. Every snapshot write expects the key's last revision. It is
// used by one goroutine at a time.
//
// How events reach the stream is the sender's: asyncEvents for a single
// producer, fencedBatches with leases.
type publisher struct {
	js       jetstream.JetStream
	kvPrefix string // event.KVSubjectPrefix of the bucket
	snap     *snapshot
	// lastSeq is the report's last stream sequence this producer knows.
	lastSeq *uint64
	maxKV   int
	events  sender

	// kv holds, in order, the publishes whose acknowledgement is awaited.
	kv   []inflight
	busy map[int32]bool // keys with a snapshot write in flight
	err  error
}

// sender gets events into the stream. add takes one event and its snapshot
// write (nil for none); commit has everything added so far sent, with the
// snapshot writes of the events stored started.
type sender interface {
	add(ctx context.Context, p *publisher, msg *nats.Msg, w *kvWrite) error
	commit(ctx context.Context, p *publisher) error
}

func (r *reporter) newPublisher() *publisher {
	p := &publisher{
		js: r.p.js, kvPrefix: event.KVSubjectPrefix(r.snap.bucket),
		snap: r.snap, lastSeq: &r.lastSeq, maxKV: r.p.cfg.MaxInFlight, busy: map[int32]bool{},
		events: asyncEvents{},
	}
	if r.gate != nil {
		p.events = &fencedBatches{nc: r.p.cfg.Conn, fence: event.ReportFilter(r.p.cfg.Prefix, r.cfg.Name), gate: r.gate}
	}
	return p
}

// Err returns the first failure; once set, the pass must be abandoned and
// the report recovered from the stream.
func (p *publisher) Err() error { return p.err }

func (p *publisher) fail(err error) error {
	if p.err == nil {
		if !errors.Is(err, ErrFenced) {
			err = explainNATS(p.js.Conn(), err)
		}
		p.err = err
	}
	return p.err
}

// event publishes an event; w, when not nil, is written to the snapshot
// once the stream has stored the event.
func (p *publisher) event(ctx context.Context, subject, id string, data []byte, w *kvWrite) error {
	if p.err != nil {
		return p.err
	}
	msg := nats.NewMsg(subject)
	msg.Header.Set(jetstream.MsgIDHeader, id)
	msg.Header.Set("Content-Type", event.ContentType)
	msg.Data = data
	return p.events.add(ctx, p, msg, w)
}

// room waits until fewer than maxKV publishes are in flight.
func (p *publisher) room(ctx context.Context) error {
	for len(p.kv) >= p.maxKV {
		if err := p.reapKV(ctx); err != nil {
			return err
		}
	}
	return nil
}

// asyncEvents publishes each event asynchronously, a bounded number in
// flight with the snapshot writes, and starts an event's snapshot write when
// its acknowledgement arrives. The stream's duplicate window, keyed by the
// event id, makes a republished event harmless.
type asyncEvents struct{}

func (asyncEvents) add(ctx context.Context, p *publisher, msg *nats.Msg, w *kvWrite) error {
	if err := p.room(ctx); err != nil {
		return err
	}
	fut, err := p.js.PublishMsgAsync(msg)
	if err != nil {
		return p.fail(fmt.Errorf("publish %s: %w", msg.Subject, err))
	}
	p.kv = append(p.kv, inflight{fut: fut, write: w})
	return nil
}

func (asyncEvents) commit(context.Context, *publisher) error { return nil }

// fencedBatches publishes events in atomic batches whose first message
// expects the last stream sequence of the report's subjects to be the one
// this producer last saw: a producer that lost its lease, or was paused past
// it, cannot add anything once another has written the report, however late
// its bytes arrive. gate, checked before each batch, refuses when the lease
// is not held.
//
// One batch is in flight at a time, and the next is filled while the
// server stores it: the next batch is sent only once the one before is
// acknowledged, because its expectation is that batch's last sequence.
type fencedBatches struct {
	nc    *nats.Conn
	fence string // the report's subject filter
	gate  func() error
	batch []pendingEvent
	// sent is the batch committed whose acknowledgement is awaited.
	sent *sentBatch
}

type pendingEvent struct {
	msg   *nats.Msg
	write *kvWrite // started once the batch is committed
}

// sentBatch is a batch sent whole, its commit's acknowledgement awaited.
type sentBatch struct {
	events []pendingEvent
	ack    jetstream.PubAckFuture
}

// maxBatch is the largest atomic batch the server accepts by default.
const maxBatch = 1000

// settleEvery is how many events are added between two looks at whether
// the batch in flight is acknowledged, to start its snapshot writes.
const settleEvery = 64

func (f *fencedBatches) add(ctx context.Context, p *publisher, msg *nats.Msg, w *kvWrite) error {
	f.batch = append(f.batch, pendingEvent{msg: msg, write: w})
	if len(f.batch) >= maxBatch {
		return f.send(ctx, p)
	}
	if f.sent != nil && len(f.batch)%settleEvery == 0 {
		return f.settle(ctx, p, false)
	}
	return nil
}

// commit sends the batch being filled and waits for the server to store
// it, and starts the snapshot writes of its events.
func (f *fencedBatches) commit(ctx context.Context, p *publisher) error {
	err := f.send(ctx, p)
	if serr := f.settle(ctx, p, true); err == nil {
		err = serr
	}
	return err
}

// send waits for the batch in flight, then sends the batch being filled
// atomically, expecting the report's last sequence to be that batch's.
func (f *fencedBatches) send(ctx context.Context, p *publisher) error {
	if err := f.settle(ctx, p, true); err != nil || len(f.batch) == 0 {
		f.batch = nil
		return err
	}
	if err := f.gate(); err != nil {
		f.batch = nil
		return p.fail(err)
	}
	batch := f.batch
	f.batch = nil
	id := nuid.Next()
	for i, pe := range batch {
		h := pe.msg.Header
		h.Set(batchIDHeader, id)
		h.Set(batchSequenceHeader, strconv.Itoa(i+1))
		if i == 0 {
			h.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(*p.lastSeq, 10))
			h.Set(jetstream.ExpectedLastSubjSeqSubjHeader, f.fence)
		}
		if i < len(batch)-1 {
			if err := f.nc.PublishMsg(pe.msg); err != nil {
				return p.fail(fmt.Errorf("publish %s: %w", pe.msg.Subject, err))
			}
		}
	}
	last := batch[len(batch)-1].msg
	last.Header.Set(batchCommitHeader, "1")
	// The commit's answer is the batch's acknowledgement: its sequence is
	// the batch's last, or the error that refused the whole batch.
	ack, err := p.js.PublishMsgAsync(last)
	if err != nil {
		return p.fail(fmt.Errorf("commit %d events: %w", len(batch), err))
	}
	f.sent = &sentBatch{events: batch, ack: ack}
	return nil
}

// settle takes the acknowledgement of the batch in flight, waiting for it
// when wait is set: the report's last sequence is then the batch's, and
// the snapshot writes of its events start. It always waits after a
// failure, so that nothing is in flight when the report is recovered.
func (f *fencedBatches) settle(ctx context.Context, p *publisher, wait bool) error {
	sb := f.sent
	if sb == nil {
		return p.err
	}
	var ack *jetstream.PubAck
	var err error
	if wait || p.err != nil {
		select {
		case ack = <-sb.ack.Ok():
		case err = <-sb.ack.Err():
		case <-ctx.Done():
			err = ctx.Err()
		}
	} else {
		select {
		case ack = <-sb.ack.Ok():
		case err = <-sb.ack.Err():
		default:
			return nil
		}
	}
	f.sent = nil
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (wrongLastSequence(apiErr.ErrorCode) || apiErr.ErrorCode == errCodeBatchDuplicate) {
			return p.fail(fmt.Errorf("%w (%s)", ErrFenced, apiErr.Description))
		}
		return p.fail(fmt.Errorf("commit %d events: %w", len(sb.events), err))
	}
	*p.lastSeq = ack.Sequence
	if p.err != nil {
		// The events are stored; the recovery brings the snapshot up to them.
		return p.err
	}
	for _, pe := range sb.events {
		if pe.write != nil {
			if err := p.sendKV(ctx, pe.write); err != nil {
				return err
			}
		}
	}
	return nil
}

// sendKV writes a row to the snapshot, expecting the key's last revision.
func (p *publisher) sendKV(ctx context.Context, w *kvWrite) error {
	for p.busy[w.idx] {
		// The same key again (a recovery applying two events of one key):
		// its expected revision is known once the first write is acknowledged.
		if err := p.reapKV(ctx); err != nil {
			return err
		}
	}
	if err := p.room(ctx); err != nil {
		return err
	}
	msg := nats.NewMsg(p.kvPrefix + w.token)
	if w.delete {
		msg.Header.Set(event.KVOperationHeader, event.KVDelete)
	} else {
		msg.Header.Set(event.HashHeader, hex.EncodeToString(w.hash[:]))
		msg.Data = w.value
	}
	msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(p.snap.entries[w.idx].rev, 10))
	fut, err := p.js.PublishMsgAsync(msg)
	if err != nil {
		return p.fail(fmt.Errorf("write snapshot row %s: %w", w.token, err))
	}
	p.busy[w.idx] = true
	p.kv = append(p.kv, inflight{fut: fut, write: w, isKV: true})
	return nil
}

// reapKV waits for the oldest publish in flight: a snapshot write, or
// (asyncEvents) an event, whose snapshot write it then starts.
func (p *publisher) reapKV(ctx context.Context) error {
	f := p.kv[0]
	p.kv = p.kv[1:]
	if !f.isKV {
		select {
		case ack := <-f.fut.Ok():
			*p.lastSeq = max(*p.lastSeq, ack.Sequence)
			if f.write != nil && p.err == nil {
				return p.sendKV(ctx, f.write)
			}
			return nil
		case err := <-f.fut.Err():
			return p.fail(fmt.Errorf("publish %s: %w", f.fut.Msg().Subject, err))
		case <-ctx.Done():
			return p.fail(fmt.Errorf("waiting for acknowledgements: %w", ctx.Err()))
		}
	}
	delete(p.busy, f.write.idx)
	select {
	case ack := <-f.fut.Ok():
		p.snap.written(f.write, ack.Sequence)
		return nil
	case err := <-f.fut.Err():
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && wrongLastSequence(apiErr.ErrorCode) {
			return p.fail(fmt.Errorf("%w: snapshot row %s changed", ErrFenced, f.write.token))
		}
		return p.fail(fmt.Errorf("write snapshot row %s: %w", f.write.token, err))
	case <-ctx.Done():
		return p.fail(fmt.Errorf("waiting for acknowledgements: %w", ctx.Err()))
	}
}

func (p *publisher) drainKV(ctx context.Context) error {
	for len(p.kv) > 0 {
		if err := p.reapKV(ctx); err != nil {
			return err
		}
	}
	return nil
}

// flush sends every event added and waits for every snapshot write.
// After a failure it still waits for every outstanding write to resolve, so
// nothing is in flight when the caller reads the stream to recover.
func (p *publisher) flush(ctx context.Context) error {
	if err := p.events.commit(ctx, p); err == nil {
		_ = p.drainKV(ctx)
	}
	if p.err != nil {
		for _, f := range p.kv {
			select {
			case <-f.fut.Ok():
			case <-f.fut.Err():
			case <-ctx.Done():
			}
		}
		p.kv = nil
		clear(p.busy)
	}
	return p.err
}
