package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/statekv"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// BucketName is the key-value bucket where the bridge keeps the endpoints
// it disabled, under a subject prefix: "<prefix>-webhooks".
func BucketName(prefix string) string { return event.WebhookBucketName(prefix) }

const endpointKeyPrefix = "endpoint."

// EndpointKey is the key of an endpoint's Disablement in BucketName:
// "endpoint.<name>". The key exists only while the endpoint is disabled.
func EndpointKey(endpoint string) string { return endpointKeyPrefix + endpoint }

// Disablement records why an endpoint delivers nothing: it answered 410
// Gone. It is stored as JSON under EndpointKey until `sink webhook enable`
// (Bridge.Enable) or `sink webhook reset` removes it; meanwhile the
// endpoint's events wait in the stream.
type Disablement struct {
	// Endpoint is the endpoint's name (from the key; not in the JSON).
	Endpoint   string    `json:"-"`
	DisabledAt time.Time `json:"disabled_at"`
	// Status is the HTTP status that disabled it (410).
	Status int `json:"status"`
	// EventID is the event whose delivery was answered so.
	EventID string `json:"event_id"`
	Reason  string `json:"reason"`
}

// ListDisabled returns the endpoints recorded as disabled under a subject
// prefix, by name; none when the bucket does not exist (no bridge has run
// or none disabled anything).
func ListDisabled(ctx context.Context, js jetstream.JetStream, prefix string) ([]Disablement, error) {
	kv, err := js.KeyValue(ctx, BucketName(prefix))
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", BucketName(prefix), err)
	}
	keys, err := statekv.Keys(ctx, js, kv)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", BucketName(prefix), err)
	}
	var out []Disablement
	for _, k := range keys {
		name, ok := strings.CutPrefix(k, endpointKeyPrefix)
		if !ok {
			continue
		}
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // enabled meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", BucketName(prefix), k, err)
		}
		out = append(out, decodeDisablement(name, e.Value()))
	}
	slices.SortFunc(out, func(a, b Disablement) int { return strings.Compare(a.Endpoint, b.Endpoint) })
	return out, nil
}

// decodeDisablement reads a record; one that cannot be read still
// disables its endpoint, and says so.
func decodeDisablement(endpoint string, data []byte) Disablement {
	var d Disablement
	if err := json.Unmarshal(data, &d); err != nil {
		d = Disablement{Reason: "unreadable record: " + err.Error()}
	}
	d.Endpoint = endpoint
	return d
}

// enable removes an endpoint's record; it returns the record removed, nil
// when there was none.
func enable(ctx context.Context, js jetstream.JetStream, prefix, endpoint string) (*Disablement, error) {
	kv, err := js.KeyValue(ctx, BucketName(prefix))
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", BucketName(prefix), err)
	}
	e, err := kv.Get(ctx, EndpointKey(endpoint))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", BucketName(prefix), EndpointKey(endpoint), err)
	}
	d := decodeDisablement(endpoint, e.Value())
	if err := kv.Delete(ctx, EndpointKey(endpoint)); err != nil {
		return nil, fmt.Errorf("remove %s %s: %w", BucketName(prefix), EndpointKey(endpoint), err)
	}
	return &d, nil
}

// stateBucket opens the bridge's bucket, creating it (with the replicas of
// the event stream) when it does not exist.
func (b *Bridge) stateBucket(ctx context.Context) (jetstream.KeyValue, error) {
	name := BucketName(b.o.Prefix)
	kv, err := b.o.JetStream.KeyValue(ctx, name)
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return kv, err
	}
	replicas := 1
	if s, err := b.o.JetStream.Stream(ctx, b.o.Stream); err == nil {
		replicas = max(1, s.CachedInfo().Config.Replicas)
	}
	kv, err = b.o.JetStream.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: name, Description: "cometstream webhook bridge: disabled endpoints", Storage: jetstream.FileStorage, Replicas: replicas,
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		return b.o.JetStream.KeyValue(ctx, name)
	}
	return kv, err
}

// watchState opens the bucket, reads every endpoint's record, and returns
// the watcher that follows later changes. Without the bucket (a NATS user
// not allowed to create or read it) it logs why and returns a nil watcher:
// a 410 then disables an endpoint only until the bridge restarts.
func (b *Bridge) watchState(ctx context.Context) (jetstream.KeyWatcher, error) {
	name := BucketName(b.o.Prefix)
	degrade := func(err error) {
		b.o.Logger.Error("cannot keep disabled endpoints in NATS: a 410 Gone disables an endpoint only until the bridge restarts; "+
			"allow this NATS user to create, read and write the bucket", "bucket", name, "err", err)
		for _, st := range b.eps {
			st.markKnown()
		}
	}
	kv, err := b.stateBucket(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil
		}
		degrade(err)
		return nil, nil
	}
	b.kv = kv
	w, err := kv.Watch(ctx, endpointKeyPrefix+"*")
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil
		}
		degrade(err)
		return nil, nil
	}
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for initial := true; initial; {
		select {
		case <-ctx.Done():
			_ = w.Stop()
			return nil, nil
		case <-timeout.C:
			_ = w.Stop()
			return nil, fmt.Errorf("bucket %s: timed out reading the disabled endpoints", name)
		case e, ok := <-w.Updates():
			switch {
			case !ok && ctx.Err() != nil:
				return nil, nil
			case !ok:
				return nil, fmt.Errorf("bucket %s: the watch ended while reading the disabled endpoints", name)
			case e == nil: // every record read
				initial = false
			default:
				b.apply(e, false)
			}
		}
	}
	for _, st := range b.eps {
		st.markKnown()
		if d := st.record(); d != nil && !st.skip {
			b.o.Logger.Warn("endpoint is disabled: it delivers nothing and its events wait in the stream; re-enable it with `"+EnableCommand(st.ep.Name)+"`",
				"endpoint", st.ep.Name, "disabled_at", d.DisabledAt, "status", d.Status, "event", d.EventID, "reason", d.Reason)
		}
	}
	return w, nil
}

// follow applies the changes of the records until ctx ends.
func (b *Bridge) follow(ctx context.Context, w jetstream.KeyWatcher) {
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() == nil {
					b.o.Logger.Error("the watch of disabled endpoints ended; `sink webhook enable` takes effect at the next restart", "bucket", BucketName(b.o.Prefix))
				}
				return
			}
			if e != nil {
				b.apply(e, true)
			}
		}
	}
}

// apply hands a record (or its removal) to its endpoint.
func (b *Bridge) apply(e jetstream.KeyValueEntry, live bool) {
	name, ok := strings.CutPrefix(e.Key(), endpointKeyPrefix)
	st := b.byName[name]
	if !ok || st == nil {
		return
	}
	var d *Disablement
	if e.Operation() == jetstream.KeyValuePut {
		rec := decodeDisablement(name, e.Value())
		d = &rec
	}
	if changed := st.load(d, e.Revision()); changed && live && !st.skip {
		if d == nil {
			b.o.Logger.Info("endpoint enabled: delivering its waiting events", "endpoint", name)
		} else {
			b.o.Logger.Warn("endpoint disabled by its record", "endpoint", name, "status", d.Status, "reason", d.Reason)
		}
	}
}

// record stores an endpoint's disablement and returns its revision.
func (b *Bridge) record(ctx context.Context, d Disablement) (uint64, error) {
	if b.kv == nil {
		return 0, errors.New("no bucket")
	}
	data, err := json.Marshal(d)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return b.kv.Put(ctx, EndpointKey(d.Endpoint), data)
}
