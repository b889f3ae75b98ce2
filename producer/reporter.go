package producer

import (
	"fmt"
	"log/slog"
	"net/url"
	"strconv"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/comet"
)

// reporter polls one report. Its fields are used by one goroutine at a time:
// the report's poller, or a caller of Producer.Poll.
type reporter struct {
	p      *Producer
	cfg    ReportConfig
	client *comet.Client
	log    *slog.Logger
	source string

	snap     *snapshot
	state    event.ReportState // as the stream says, possibly not saved yet
	saved    event.ReportState // as last written
	stateRev uint64

	schema *event.Schema
	keyer  *event.Keyer
	shapes shapes

	// lastSeq is the stream sequence of the report's last event, as far as
	// this producer knows: every batch it publishes expects it.
	lastSeq uint64
	// gate, when set, says whether this producer may still act for the
	// report (its lease); it is asked before every request and batch.
	gate func() error

	// suspects are keys missing from the last consistent pass; a key is
	// deleted when the next consistent pass misses it too.
	suspects map[string]struct{}
	// pendingCreates are content-keyed rows new in the last consistent
	// pass; a row is created when the next consistent pass has it too.
	pendingCreates map[string]struct{}
	// lastRows is what the last pass of a content-keyed report saw of its
	// rows (content.go): when either pass saw a surplus copy, the next
	// publishes deletes and further copies only if it saw the same.
	lastRows rowSet
	// repeated are the keys seen on several rows of a pass (by index entry),
	// held back until a pass ends; repeatedDirty says the recorded set is
	// out of date.
	repeated      map[int32]struct{}
	repeatedDirty bool
	// confirmedColumns are new columns a pass saw on every page, which the
	// next pass publishes; nil once published.
	confirmedColumns []event.Column
	// keyRows is what the last passes saw of each repeated key's rows
	// (repeated.go); a restart forgets it.
	keyRows map[int32]keyRows
	pass    uint32
	// recovered says the index and state reflect the stream; cleared by
	// any failure to publish.
	recovered bool
	// confirmSoon asks for the next pass now, to confirm suspects; a pass
	// that was itself such a confirmation does not ask again, so churn can
	// at most double the polling. probeSoon asks for it now to publish the
	// columns a probe found on every page; that pass confirms nothing, and
	// may ask for its own confirmation. soon says the pass under way was
	// asked for so (it follows at once, not an interval later).
	confirmSoon, confirming, probeSoon, soon bool
	failures                                 int
	// watch is what the watchdog sees of the report's loop.
	watch watch
}

func newReporter(p *Producer, cfg ReportConfig) (*reporter, error) {
	log := p.cfg.Logger.With("report", cfg.Name)
	cc := cfg.Comet
	if cc.Logger == nil {
		cc.Logger = log
	}
	user := cfg.Group
	if user == "" {
		user = cfg.Name
	}
	if cc.Limiter != nil {
		p.m.userLimit.WithLabelValues(user).Set(cc.Limiter.Limit())
	}
	p.m.stalled.WithLabelValues(cfg.Name).Set(0)
	// Counters a rule takes a rate of exist from the start, at 0.
	p.m.overruns.WithLabelValues(cfg.Name)
	var r *reporter
	cc.Gate = func() error {
		if r.gate != nil {
			return r.gate()
		}
		return nil
	}
	cc.OnRequest = func(info comet.RequestInfo) {
		if info.Status == -1 {
			p.m.rateWait.WithLabelValues(cfg.Name).Add(info.Wait.Seconds())
			return
		}
		status := "error"
		if info.Status > 0 {
			status = strconv.Itoa(info.Status)
		}
		p.m.requests.WithLabelValues(cfg.Name, status).Inc()
		p.m.userCalls.WithLabelValues(user).Inc()
	}
	client, err := comet.New(cc)
	if err != nil {
		return nil, fmt.Errorf("report %s: %w", cfg.Name, err)
	}
	u, _ := url.Parse(cc.BaseURL)
	r = &reporter{
		p:        p,
		cfg:      cfg,
		client:   client,
		log:      log,
		source:   "comet://" + u.Host + "/" + cfg.Name,
		snap:     newSnapshot(p.snaps[cfg.Name], event.BucketName(p.cfg.Prefix, cfg.Name)),
		suspects: map[string]struct{}{},
		repeated: map[int32]struct{}{}, keyRows: map[int32]keyRows{},
	}
	return r, nil
}

// useColumns makes cols the schema rows are diffed with.
func (r *reporter) useColumns(cols []event.Column) error {
	s, err := event.NewSchema(cols)
	if err != nil {
		return err
	}
	k, err := event.NewKeyer(s, r.cfg.Key)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKeyColumnMissing, err)
	}
	r.schema, r.keyer = s, k
	return nil
}
