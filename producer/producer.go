package producer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
)

// Producer polls reports and publishes their changes. Open prepares it; Run
// polls until its context ends; Poll runs one pass of one report.
type Producer struct {
	cfg    Config
	m      *metrics
	js     jetstream.JetStream
	stream jetstream.Stream
	state  jetstream.KeyValue
	snaps  map[string]jetstream.KeyValue

	reports map[string]*reporter
	order   []string
	// locks serialise passes of one report (Run's poller and Poll).
	locks map[string]*sync.Mutex
	ready atomic.Bool
	// held counts the leases this producer holds.
	held atomic.Int64
	// maxRow is the largest row an event can carry: an update holds the
	// row twice and the key once, within the server's max_payload.
	maxRow int
	// writer is the claim on the stream of a producer without leases.
	writer *writer
	// stalled counts the reports the watchdog finds stalled.
	stalled atomic.Int64
}

// New checks the configuration and registers the metrics.
func New(cfg Config) (*Producer, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("producer metrics: %w", err)
	}
	// Each report's publisher bounds its own publishes in flight, waiting
	// for acknowledgements (up to AckTimeout) when it reaches the bound; a
	// fenced one adds a batch's commit. The connection's bound is theirs
	// together, so that no publish is refused because other reports have
	// theirs in flight, which nats.go does after a 200 ms wait.
	js, err := jetstream.New(cfg.Conn,
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout),
		jetstream.WithPublishAsyncMaxPending(max(len(cfg.Reports), 1)*(cfg.MaxInFlight+1)+16),
	)
	if err != nil {
		return nil, err
	}
	maxRow := int(cfg.Conn.MaxPayload()/3) - 4096
	return &Producer{cfg: cfg, m: m, js: js, reports: map[string]*reporter{}, locks: map[string]*sync.Mutex{}, maxRow: max(maxRow, 1024)}, nil
}

// Open creates the stream and buckets when missing, refuses conflicting
// ones, and recovers every report's index and state from the stream.
func (p *Producer) Open(ctx context.Context) error {
	s, err := ensureStream(ctx, p.js, &p.cfg)
	if err != nil {
		return err
	}
	p.stream = s
	if p.cfg.LeaseTTL > 0 {
		if err := checkFencing(s, p.cfg.Conn.ConnectedServerVersion()); err != nil {
			return err
		}
	}
	names := make([]string, len(p.cfg.Reports))
	for i, r := range p.cfg.Reports {
		names[i] = r.Name
	}
	if p.state, p.snaps, err = ensureBuckets(ctx, p.js, p.cfg.Prefix, p.cfg.Replicas, names); err != nil {
		return err
	}
	// Before touching any report: another producer may write them.
	if p.writer, err = p.claimStream(ctx); err != nil {
		return err
	}
	for _, rc := range p.cfg.Reports {
		r, err := newReporter(p, rc)
		if err != nil {
			return err
		}
		// With leases, a report is recovered when its lease is acquired:
		// another producer may be writing it now.
		if p.cfg.LeaseTTL == 0 {
			if err := r.recover(ctx); err != nil {
				return err
			}
		}
		p.reports[rc.Name] = r
		p.order = append(p.order, rc.Name)
		p.locks[rc.Name] = &sync.Mutex{}
	}
	for _, name := range p.cfg.AllowDeletes {
		if _, ok := p.reports[name]; !ok {
			return fmt.Errorf("allow deletes: no report %q", name)
		}
		rel, err := ReleaseDeletes(ctx, p.js, p.cfg.Prefix, name, 0, p.cfg.Now())
		if err != nil {
			return err
		}
		p.cfg.Logger.Warn("released the held deletes on the operator's request", "report", name, "held", rel.Held, "expires", rel.Expires)
	}
	p.ready.Store(true)
	return nil
}

// Ready reports whether Open finished, NATS is connected, and no report
// has stalled.
func (p *Producer) Ready() bool {
	return p.ready.Load() && p.cfg.Conn.IsConnected() && p.stalled.Load() == 0
}

// Poll runs one pass of a report now and returns its receipt (nil when the
// pass failed before any page arrived).
func (p *Producer) Poll(ctx context.Context, report string) (*event.Synced, error) {
	r, ok := p.reports[report]
	if !ok {
		return nil, fmt.Errorf("no report %q", report)
	}
	mu := p.locks[report]
	mu.Lock()
	defer mu.Unlock()
	s, err := r.poll(ctx)
	return s, explainNATS(p.cfg.Conn, err)
}

// Run polls every report on its interval until ctx ends, then finishes or
// abandons the passes under way and waits for their acknowledgements. It
// calls Open first if needed.
func (p *Producer) Run(ctx context.Context) error {
	if !p.ready.Load() {
		if err := p.Open(ctx); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		p.watchdog(ctx)
	}()
	defer func() { cancel(); <-watched }()
	if p.cfg.LeaseTTL > 0 {
		return p.runLeased(ctx)
	}
	var wg sync.WaitGroup
	var lost error
	if p.writer != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if lost = p.writer.renew(ctx); lost != nil {
				p.cfg.Logger.Error("another producer took over the stream: stopping (run one producer without ha, or set ha.lease_ttl in all)")
				cancel()
			}
		}()
	}
	for _, name := range p.order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.loop(ctx, name)
		}()
	}
	// The loops end with ctx; the claim's renewal then lets it go.
	wg.Wait()
	return lost
}

// Permanent reports whether a pass error needs the operator (a
// configuration that cannot work) rather than time.
func Permanent(err error) bool {
	return errors.Is(err, ErrKeyChanged) || errors.Is(err, ErrReportChanged) || errors.Is(err, ErrKeyColumnMissing)
}
