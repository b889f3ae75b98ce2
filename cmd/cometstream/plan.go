package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/comet"
	"github.com/cometstream/cometstream/internal/config"
	"github.com/cometstream/cometstream/internal/natsconn"
	"github.com/cometstream/cometstream/internal/plan"
	"github.com/cometstream/cometstream/internal/redact"
	"github.com/cometstream/cometstream/internal/statekv"
)

// planOutput is what `cometstream plan --json` prints.
type planOutput struct {
	OK bool `json:"ok"`
	// Notes say where the page counts came from.
	Notes []string      `json:"notes,omitempty"`
	Users []plan.Result `json:"users"`
}

// errCannotKeep makes plan exit 1 when a report cannot keep its interval,
// or cannot be shown to, so scripts can gate on it.
type errCannotKeep struct{ reports []string }

func (e *errCannotKeep) Error() string {
	return fmt.Sprintf("%d report(s) cannot keep their interval (or cannot be shown to): %s", len(e.reports), strings.Join(e.reports, ", "))
}

// planNATSTimeout bounds reading the state records.
const planNATSTimeout = 15 * time.Second

func runPlan(ctx context.Context, args []string) error {
	fs, cc := newConfigCommand("plan", "configuration file (required); the reports need no key columns yet")
	natsURL := fs.String("nats", "", "NATS URL holding the producer's state records; default nats.url, then $NATS_URL, then the embedded server's nats.listen; when none answers, every page count comes from page 0")
	asJSON := fs.Bool("json", false, "print JSON instead of tables")
	cfg, log, err := cc.parse(fs, args, true)
	if err != nil {
		return err
	}
	creds := cc.creds
	url, from, _ := producerURL(*natsURL, cfg)
	if from == fromEmbedded {
		url = embeddedClientURL(cfg.NATS.Listen)
	}
	sizes, notes := lastPasses(ctx, cfg, url, from, creds, log)
	users := planUsers(cfg)
	notes = append(notes, measurePage0(ctx, cfg, users, sizes, log)...)

	out := planOutput{OK: true, Notes: notes, Users: []plan.Result{}}
	var bad []string
	for _, u := range users {
		res := plan.Compute(u)
		out.OK = out.OK && res.OK
		for _, rr := range res.Reports {
			if !rr.OK {
				bad = append(bad, rr.Report+" ("+strings.Join(rr.Problems, ", ")+")")
			}
		}
		out.Users = append(out.Users, res)
	}
	if *asJSON {
		if err := printJSON(os.Stdout, out); err != nil {
			return err
		}
	} else {
		for _, n := range notes {
			fmt.Fprintln(os.Stdout, "note: "+n)
		}
		if len(notes) > 0 {
			fmt.Fprintln(os.Stdout)
		}
		plan.Print(os.Stdout, out.Users)
	}
	if !out.OK {
		return &errCannotKeep{reports: bad}
	}
	return nil
}

// planUsers groups the configured reports by COMET user (config.Lane), the
// reports that share one limiter, in the order of the file.
func planUsers(cfg *config.Config) []plan.User {
	var users []plan.User
	index := map[string]int{}
	lanes := cfg.Lanes()
	for _, ref := range cfg.Reports() {
		lane := lanes[ref.Report.Name]
		k := lane.Name()
		i, ok := index[k]
		if !ok {
			i = len(users)
			index[k] = i
			users = append(users, plan.User{Source: lane.Source, Name: lane.User, RateLimit: lane.RateLimit})
		}
		users[i].Reports = append(users[i].Reports, plan.Report{Name: ref.Report.Name, Interval: ref.Report.Interval, PageSize: ref.Report.PageSize})
	}
	return users
}

// embeddedClientURL is where a client on this machine reaches the
// embedded server a configuration without a NATS URL starts: its
// nats.listen, a wildcard host read as loopback; "" when the port is chosen
// at start (0), since nothing says which one was.
func embeddedClientURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "0" || port == "" {
		return ""
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "nats://" + net.JoinHostPort(host, port)
}

// lastPasses reads what the producer's state records say of each report's
// last complete pass: its pages, with the page size and rows of its last
// receipt. NATS is optional: when it is not configured or not reachable,
// a note says so and the page counts come from page 0.
func lastPasses(ctx context.Context, cfg *config.Config, url, from string, creds natsconn.Options, log *slog.Logger) (map[string]plan.Size, []string) {
	if url == "" {
		return nil, []string{"no NATS URL (--nats, nats.url, $NATS_URL, or nats.listen with a fixed port): every page count comes from page 0 now"}
	}
	bucket := event.StateBucketName(cfg.NATS.SubjectPrefix)
	unused := func(err error) []string {
		return []string{fmt.Sprintf("state records not read (%v): every page count comes from page 0 now", err)}
	}
	opts, err := natsOptions(cfg.NATS, url)
	if err != nil {
		return nil, unused(err)
	}
	opts.Override(creds)
	opts.Name = "cometstream plan"
	nc, err := natsconn.Connect(opts, log)
	if err != nil {
		return nil, unused(withURL(err, url, from))
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, unused(err)
	}
	ctx, cancel := context.WithTimeout(ctx, planNATSTimeout)
	defer cancel()
	kv, err := statekv.Open(ctx, js, cfg.NATS.SubjectPrefix)
	if errors.Is(err, statekv.ErrNoBucket) {
		return nil, []string{fmt.Sprintf("no bucket %s at %s (has a producer run?): every page count comes from page 0 now", bucket, redact.URLs(nc.ConnectedUrl()))}
	}
	if err != nil {
		return nil, unused(err)
	}
	var stream jetstream.Stream // nil: the receipts cannot be read
	if s, err := js.Stream(ctx, cfg.NATS.Stream); err == nil {
		stream = s
	} else {
		log.Warn("no stream: the page size and rows of the last passes are not known", "stream", cfg.NATS.Stream, "err", err)
	}
	sizes := map[string]plan.Size{}
	for _, ref := range cfg.Reports() {
		name := ref.Report.Name
		st, rev, err := statekv.Report(ctx, kv, name)
		if err != nil {
			return nil, unused(err)
		}
		if rev == 0 || st.Pages < 1 {
			continue // no complete pass yet
		}
		size := plan.Size{From: plan.FromLastPass, Pages: st.Pages}
		if st.PageSize > 0 {
			size.Served, size.Capped = st.PageSize, true
		}
		if stream != nil {
			if s := lastReceipt(ctx, stream, cfg.NATS.SubjectPrefix, name); s != nil {
				if !size.Capped && s.PageSize > 0 {
					size.Served = s.PageSize
				}
				size.Rows, size.RowsKnown = s.TotalSize, true
			}
		}
		sizes[name] = size
	}
	return sizes, []string{fmt.Sprintf("page counts from the producer's state records (bucket %s at %s) where a pass completed, else from page 0 now", bucket, redact.URLs(nc.ConnectedUrl()))}
}

// lastReceipt returns a report's last synced receipt, nil when there is none.
func lastReceipt(ctx context.Context, s jetstream.Stream, prefix, report string) *event.Synced {
	m, err := s.GetLastMsgForSubject(ctx, event.ReportSubject(prefix, report, event.KindSynced))
	if err != nil {
		return nil
	}
	ev, err := event.Decode(m.Data)
	if err != nil {
		return nil
	}
	return ev.Synced
}

// planPage0Concurrency bounds the page-0 requests in flight; each user's
// limiter paces its own.
const planPage0Concurrency = comet.DefaultConcurrency

// measurePage0 fills in every report's size: from its last pass when that
// holds at the configured page size, else from one request for page 0
// through a limiter per COMET user, as the producer would make it. A
// report that cannot be asked (no API key, COMET failing) is left with
// its page count unknown, saying why. It returns notes on last passes that
// no longer apply.
func measurePage0(ctx context.Context, cfg *config.Config, users []plan.User, last map[string]plan.Size, log *slog.Logger) []string {
	var notes []string
	var wg sync.WaitGroup
	sem := make(chan struct{}, planPage0Concurrency)
	for ui := range users {
		u := &users[ui]
		limiter := comet.NewLimiter(u.RateLimit)
		for ri := range u.Reports {
			r := &u.Reports[ri]
			if s, ok := last[r.Name]; ok {
				if _, _, holds := s.PagesAt(r.PageSize); holds {
					r.Size = s
					continue
				}
				notes = append(notes, fmt.Sprintf("%s: the last pass was served %d rows a page; page_size %d may be served differently: page 0 asked now", r.Name, s.Served, r.PageSize))
			}
			ref, _ := cfg.Find(r.Name)
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				r.Size = page0Size(ctx, ref, r.PageSize, limiter, log)
			})
		}
	}
	wg.Wait()
	return notes
}

// page0Size asks COMET for page 0 of a report: lastPage + 1 pages at the
// page size it serves.
func page0Size(ctx context.Context, ref config.ReportRef, pageSize int, limiter *comet.Limiter, log *slog.Logger) plan.Size {
	key, err := ref.Report.ResolveAPIKey(ref.Field, log)
	if err != nil {
		var fe *config.FieldError
		if errors.As(err, &fe) {
			err = fe // "sources[0].reports[2].api_key_env: …", without the ErrInvalid prefix
		}
		return plan.Size{Unknown: "no API key for page 0: " + err.Error()}
	}
	client, err := comet.New(comet.Config{
		BaseURL: ref.Source.BaseURL, APIKey: key, Timeout: ref.Source.Timeout,
		Path: ref.Report.Path, Params: ref.Report.Params,
		Limiter: limiter, Logger: log, MaxRetries: 2,
	})
	if err != nil {
		return plan.Size{Unknown: fmt.Sprintf("%s: %v", ref.Field, err)}
	}
	p, err := client.FetchPage(ctx, 0, pageSize)
	if err != nil {
		return plan.Size{Unknown: "page 0: " + err.Error()}
	}
	served := p.Served()
	return plan.Size{
		From: plan.FromPage0, Pages: max(comet.LastPageOf(p.TotalSize, served), 0) + 1,
		Served: served, Capped: served < pageSize,
		Rows: p.TotalSize, RowsKnown: true,
	}
}
