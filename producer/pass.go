package producer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/comet"
)

// pass is one poll of a report: fetch every page, diff each row against the
// index, publish the changes.
type pass struct {
	r       *reporter
	n       uint32
	sync    string
	started time.Time
	pub     *publisher
	columns []event.Column // this pass's columns, from its first page

	content map[event.Hash]int // identical rows seen, for content keys
	rowSet  rowSet             // the rows seen, for content keys
	// candidates are the rows of keys that repeat, held back until the pass
	// ends (repeated.go); fresh the content-keyed rows the snapshot lacks,
	// awaiting the next consistent pass (content.go).
	candidates map[int32]*candidate
	fresh      freshRows
	undeclared map[string]struct{}
	// probing: page 0 declared columns other than the report's, not seen
	// on every page of a pass yet; the pass only reads its pages.
	probing bool

	created, updated, deleted int
	invalid, duplicates       int
	invalidCells              int
	keyed                     int // distinct keys seen
	sinceCheckpoint           int
	firstInvalid, firstDup    string
	firstCell                 string
}

// outcome is how a pass ended, for its log line and metrics.
type outcome struct {
	result   string
	held     int
	finished time.Time
}

func newSyncID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405.000Z") + "-" + hex.EncodeToString(b[:])
}

// poll runs one pass and returns its receipt. Passes that fail before any
// page arrived return no receipt.
func (r *reporter) poll(ctx context.Context) (*event.Synced, error) {
	if !r.recovered {
		if err := r.recover(ctx); err != nil {
			return nil, err
		}
	}
	r.pass++
	now := r.p.cfg.Now()
	ps := &pass{
		r: r, n: r.pass, sync: newSyncID(now), started: now,
		pub:     r.newPublisher(),
		content: map[event.Hash]int{},
	}
	// Publishing and acknowledgements outlive a shutdown request: the pass
	// stops fetching at once but waits for what it already sent, for twice
	// the acknowledgement timeout at most once ctx ends. A pass itself may
	// take as long as its pages do (minutes for a large report at 10 calls
	// a second): each publish has its own acknowledgement timeout.
	pubCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopBound := context.AfterFunc(ctx, func() { time.AfterFunc(2*r.p.cfg.AckTimeout, cancel) })
	defer stopBound()

	sum, fetchErr := r.client.Fetch(ctx, comet.FetchOptions{
		PageSize:    r.cfg.PageSize,
		ServedSize:  r.state.PageSize,
		ExpectPages: r.state.Pages,
		Prepare:     r.prepare,
		Progress: func(pages, lastPage, rows int) {
			r.watch.alive(time.Now())
			if r.p.cfg.Progress != nil {
				r.p.cfg.Progress(r.cfg.Name, pages, lastPage, rows)
			}
		},
	}, func(p *comet.Page) error { return ps.page(pubCtx, p) })

	receipt, out, err := ps.finish(pubCtx, sum, fetchErr)
	err = explainNATS(r.p.cfg.Conn, err) // before the failed event and LastError quote it
	stopping := ctx.Err() != nil && errors.Is(fetchErr, context.Canceled)
	if err != nil && !stopping && ps.pub.Err() == nil {
		if ferr := ps.failing(pubCtx, err); ferr != nil {
			err = errors.Join(err, ferr)
		}
	}
	if perr := ps.pub.flush(pubCtx); perr != nil {
		r.recovered = false // the next pass recovers from the stream first
		r.p.m.passes.WithLabelValues(r.cfg.Name, resultFailed).Inc()
		return nil, fmt.Errorf("pass %s: %w", ps.sync, perr)
	}
	if receipt != nil {
		ps.logged(sum, out)
	}
	r.state.Checkpoint = max(r.state.Checkpoint, r.lastSeq)
	switch {
	case err == nil:
		r.state.LastError, r.state.LastErrorAt = "", time.Time{}
		r.recoveredFromFailing()
	case !stopping:
		// A pass abandoned because the producer is stopping says nothing
		// about COMET: the last real error stays.
		r.state.LastError, r.state.LastErrorAt = err.Error(), r.p.cfg.Now().UTC()
	}
	if serr := r.saveState(pubCtx); serr != nil {
		r.recovered = false
		return receipt, errors.Join(err, serr)
	}
	if err := r.saveRepeated(pubCtx); err != nil {
		r.log.Warn("could not record the keys seen repeated; after a restart they are learnt again", "err", err)
	}
	return receipt, err
}

// page diffs the rows of one page and publishes their changes.
func (ps *pass) page(ctx context.Context, p *comet.Page) error {
	r := ps.r
	if ps.columns == nil {
		ps.columns = p.Columns
		// A pass's confirmation of new columns holds for the next pass only.
		confirmed := r.confirmedColumns
		r.confirmedColumns = nil
		if r.state.Columns != nil && !slices.Equal(r.state.Columns, p.Columns) && !slices.Equal(confirmed, p.Columns) {
			// New columns are published once a whole pass has them, so
			// that one page declaring them (a deployment mid-upgrade, a
			// faulty node) cannot publish a schema and rows in it that the
			// next pass takes back.
			ps.probing = true
			r.log.Info("the report's columns changed on page 0: reading every page before publishing them", "sync", ps.sync)
		} else if err := ps.schema(ctx, p.Columns, p.Undeclared); err != nil {
			return err
		}
	} else if !slices.Equal(ps.columns, p.Columns) {
		return ErrColumnsChanged
	}
	if ps.probing {
		return nil
	}
	for _, f := range p.Undeclared {
		if ps.undeclared == nil {
			ps.undeclared = map[string]struct{}{}
		}
		ps.undeclared[f] = struct{}{}
	}
	pp, _ := p.Prepared.(*prepared)
	if pp == nil || !slices.Equal(pp.columns, ps.columns) {
		pp = prepareRows(p, r.schema, r.keyer, r.p.maxRow)
	}
	for i, pr := range pp.rows {
		if pr.invalid != "" {
			ps.invalidRow(pr.invalid)
			continue
		}
		if pr.badCells > 0 {
			ps.invalidCells += pr.badCells
			if ps.firstCell == "" {
				ps.firstCell = pr.firstBad
			}
		}
		if err := ps.row(ctx, p.Row(i), pp.buf[pr.start:pr.end], pr.hash, pr.token); err != nil {
			return err
		}
	}
	if ps.sinceCheckpoint >= r.p.cfg.CheckpointEvery {
		return ps.checkpoint(ctx)
	}
	return ps.pub.Err()
}

func (ps *pass) invalidRow(reason string) {
	ps.invalid++
	if ps.firstInvalid == "" {
		ps.firstInvalid = reason
	}
}

// checkpoint waits for everything published so far and records it, so a
// crash in a long first pass does not start over from nothing.
func (ps *pass) checkpoint(ctx context.Context) error {
	if err := ps.pub.flush(ctx); err != nil {
		return err
	}
	ps.sinceCheckpoint = 0
	ps.r.state.Checkpoint = max(ps.r.state.Checkpoint, ps.r.lastSeq)
	return ps.r.saveState(ctx)
}

// schema publishes a schema event when the columns differ from the last
// published ones, or the rows carry fields the last one did not name, and
// switches the diff to the columns.
func (ps *pass) schema(ctx context.Context, cols []event.Column, undeclared []string) error {
	r := ps.r
	newFields := !subset(undeclared, r.state.Undeclared)
	if r.schema != nil && slices.Equal(r.state.Columns, cols) && !newFields {
		return nil
	}
	if err := r.useColumns(cols); err != nil {
		return err
	}
	if slices.Equal(r.state.Columns, cols) && !newFields {
		return nil // known columns, index rebuilt after a restart
	}
	return ps.publishSchema(ctx, cols, undeclared)
}

// publishSchema publishes a schema event and waits for it: row events rely
// on it.
func (ps *pass) publishSchema(ctx context.Context, cols []event.Column, undeclared []string) error {
	r := ps.r
	undeclared = slices.Clone(undeclared)
	if undeclared == nil {
		undeclared = []string{}
	}
	colsJSON, _ := json.Marshal(cols)
	data := event.SchemaChange{Report: r.cfg.Name, Columns: cols, Previous: r.state.Columns, Undeclared: undeclared}
	id := event.ID(r.cfg.Name, string(event.KindSchema), strconv.FormatUint(r.state.Checkpoint, 10), string(colsJSON), strings.Join(undeclared, "\x00"))
	if err := ps.report(ctx, event.KindSchema, id, data); err != nil {
		return err
	}
	r.log.Info("report schema", "columns", len(cols), "changed", r.state.Columns != nil, "undeclared", undeclared)
	r.state.Columns, r.state.Undeclared, r.confirmedColumns = slices.Clone(cols), undeclared, nil
	return ps.checkpoint(ctx)
}

// subset reports whether every element of a is in b.
func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// report publishes a report event.
func (ps *pass) report(ctx context.Context, kind event.ReportKind, id string, data any) error {
	r := ps.r
	b, err := event.Encode(id, r.source, kind.Type(), r.p.cfg.Now(), data)
	if err != nil {
		return err
	}
	r.p.m.events.WithLabelValues(r.cfg.Name, string(kind)).Inc()
	return ps.pub.event(ctx, event.ReportSubject(r.p.cfg.Prefix, r.cfg.Name, kind), id, b, nil)
}

// row takes one keyed row of the pass. canonical is the row's canonical
// JSON, h its hash, token its key token (empty for content keys).
func (ps *pass) row(ctx context.Context, vals []event.Value, canonical []byte, h event.Hash, token string) error {
	r := ps.r
	if r.keyer.Content() {
		return ps.contentRow(canonical, h)
	}
	idx, known := r.snap.find(token)
	if !known {
		idx = r.snap.add(token)
	}
	e := &r.snap.entries[idx]
	if known && e.seen == ps.n {
		// The key again in this pass: it is settled once the pass has
		// every row of it.
		ps.duplicates++
		if ps.firstDup == "" {
			ps.firstDup = strings.Clone(token)
		}
		ps.candidate(idx, vals, canonical, h, !r.isRepeated(idx))
		return nil
	}
	ps.keyed++
	e.seen = ps.n
	if len(r.suspects) > 0 {
		delete(r.suspects, token)
	}
	if r.isRepeated(idx) {
		ps.candidate(idx, vals, canonical, h, false)
		return nil
	}
	if known && e.live && e.hash == h {
		return nil
	}
	return ps.publishRow(ctx, idx, vals, canonical, h)
}

// publishRow publishes a row as created or updated against what the
// snapshot holds for its key. vals may be nil for a content-keyed row,
// which is never updated and whose key is the row.
func (ps *pass) publishRow(ctx context.Context, idx int32, vals []event.Value, canonical []byte, h event.Hash) error {
	r := ps.r
	e := &r.snap.entries[idx]
	// A change outlives the page (until its snapshot write is acknowledged):
	// the token is copied out of the index, which may grow.
	token := r.snap.token(idx)
	op, before, changed := event.OpCreated, []byte(nil), []string(nil)
	if e.live {
		op = event.OpUpdated
		var err error
		if before, err = r.snap.get(ctx, token); err != nil {
			return err
		}
		changed = changedColumns(r.schema, before, vals)
	}
	after := slices.Clone(canonical)
	key := after
	if !r.keyer.Content() {
		key = r.keyer.AppendKey(nil, vals)
	}
	id := event.ID(r.cfg.Name, token, string(op), strconv.FormatUint(e.rev, 10), hex.EncodeToString(h[:]))
	data := (&event.RowEvent{
		ID: id, Source: r.source, Token: token, Time: r.p.cfg.Now(), Report: r.cfg.Name, Op: op, Sync: ps.sync,
		Key: key, Before: before, After: after, Changed: changed,
	}).Append(nil)
	if !e.live {
		r.snap.live++
	}
	e.hash, e.live, e.published, e.created = h, true, ps.n, op == event.OpCreated
	if op == event.OpCreated {
		ps.created++
	} else {
		ps.updated++
	}
	ps.sinceCheckpoint++
	r.p.m.events.WithLabelValues(r.cfg.Name, string(op)).Inc()
	r.p.m.kvWrites.WithLabelValues(r.cfg.Name).Inc()
	return ps.pub.event(ctx, event.RowSubject(r.p.cfg.Prefix, r.cfg.Name, op, token), id, data, &kvWrite{idx: idx, token: token, value: after, hash: h})
}

// changedColumns lists the columns whose values differ between the stored
// row and the new one, in column order, then columns the row no longer has.
func changedColumns(s *event.Schema, before []byte, vals []event.Value) []string {
	var old event.Row
	if err := json.Unmarshal(before, &old); err != nil {
		// An unreadable stored row: everything changed.
		out := make([]string, len(s.Columns))
		for i, c := range s.Columns {
			out[i] = c.Key
		}
		return out
	}
	var out []string
	for i, c := range s.Columns {
		if v, ok := old[c.Key]; !ok || !v.Equal(vals[i]) {
			out = append(out, c.Key)
		}
	}
	var gone []string
	for k := range old {
		if s.Index(k) < 0 {
			gone = append(gone, k)
		}
	}
	slices.Sort(gone)
	return append(out, gone...)
}

// finish ends a pass: the repeated keys and content-keyed rows it held
// back, deletes when the pass can be trusted, the receipt, and the
// unavailable transitions.
func (ps *pass) finish(ctx context.Context, sum comet.Summary, fetchErr error) (*event.Synced, outcome, error) {
	r := ps.r
	name := r.cfg.Name
	if errors.Is(fetchErr, comet.ErrReportUnavailable) {
		var ce *comet.Error
		status := 0
		if errors.As(fetchErr, &ce) {
			status = ce.Status
		}
		if r.state.Unavailable == 0 {
			id := event.ID(name, string(event.KindUnavailable), strconv.FormatUint(r.state.Checkpoint, 10), strconv.Itoa(status))
			if err := ps.report(ctx, event.KindUnavailable, id, event.Unavailable{Report: name, Status: status, Reason: fetchErr.Error()}); err != nil {
				return nil, outcome{}, err
			}
			r.log.Error("report unavailable: COMET refused its API key (or base_url or path is wrong); nothing will be deleted", "status", status)
		}
		r.state.Unavailable = status
		r.p.m.passes.WithLabelValues(name, resultUnavailable).Inc()
		if sum.Pages == 0 {
			return nil, outcome{}, fetchErr
		}
	} else if fetchErr == nil || sum.Pages > 0 {
		if r.state.Unavailable != 0 {
			r.log.Info("report available again")
			r.state.Unavailable = 0
		}
	}
	if fetchErr != nil && sum.Pages == 0 {
		r.p.m.passes.WithLabelValues(name, resultFailed).Inc()
		return nil, outcome{}, fetchErr
	}
	ps.servedSize(sum)

	complete := fetchErr == nil && sum.Complete
	if ps.probing {
		return ps.probed(ctx, sum, fetchErr, complete)
	}
	waiting, err := ps.settle(ctx, complete && sum.TotalSizeStable)
	if err != nil {
		return nil, outcome{}, err
	}
	if complete && !subset(sortedKeys(ps.undeclared), r.state.Undeclared) {
		// Later pages carried fields page 0 did not.
		if err := ps.publishSchema(ctx, r.state.Columns, sortedKeys(ps.undeclared)); err != nil {
			return nil, outcome{}, err
		}
	}
	ok := consistent(sum, fetchErr, ps.keyed, ps.duplicates, ps.invalid)
	// What the pass may settle: for a keyed report a consistent pass's
	// deletes, confirmed by the suspects of the last; for a content-keyed
	// one only what it and the last consistent pass agree on (content.go).
	agreed := ok
	held, unconfirmed := 0, waiting
	if r.keyer != nil && r.keyer.Content() {
		ps.rowSet.ok = ok
		agreed = ps.rowSet.agrees(r.lastRows)
		r.lastRows = ps.rowSet
		n, err := ps.confirmContent(ctx, ok, agreed)
		if err != nil {
			return nil, outcome{}, err
		}
		unconfirmed += n
	}
	if ok {
		var err error
		var n int
		if held, n, err = ps.deletes(ctx, agreed); err != nil {
			return nil, outcome{}, err
		}
		unconfirmed += n
	} else {
		held = r.state.Held // a hold stands as it was
	}
	if fetchErr == nil {
		if ok {
			r.state.Inconsistent = 0
		} else {
			r.state.Inconsistent++
		}
		r.p.m.inconsistent.WithLabelValues(r.cfg.Name).Set(float64(r.state.Inconsistent))
	}
	if !ok {
		ps.explainInconsistent(sum, fetchErr)
	}
	// Rows missing, or content-keyed rows new, in a consistent pass are
	// confirmed by the next one, at once; a pass that was itself such a
	// confirmation does not ask again, so churn at most doubles the polling.
	r.confirmSoon = unconfirmed > 0 && !r.confirming
	ps.explainCells()

	return ps.receipt(ctx, sum, fetchErr, ok, held)
}

// probed ends a pass that only read its pages, page 0 having declared new
// columns: when every page declared them, the next pass, at once, publishes
// them and diffs the rows in them. It publishes the receipt, and nothing
// else: no row was diffed, so none is missing.
func (ps *pass) probed(ctx context.Context, sum comet.Summary, fetchErr error, complete bool) (*event.Synced, outcome, error) {
	r := ps.r
	// Every page had them: a page with other columns fails the pass.
	// Rows that moved or arrived meanwhile do not matter here.
	if complete {
		r.confirmedColumns, r.probeSoon = slices.Clone(ps.columns), true
		r.log.Info("every page has the new columns: the next pass publishes them", "sync", ps.sync)
	}
	return ps.receipt(ctx, sum, fetchErr, false, r.state.Held)
}

// receipt publishes the pass's receipt and says how it ended.
func (ps *pass) receipt(ctx context.Context, sum comet.Summary, fetchErr error, ok bool, held int) (*event.Synced, outcome, error) {
	r := ps.r
	name := r.cfg.Name
	finished := r.p.cfg.Now()
	receipt := &event.Synced{
		Report: name, Sync: ps.sync, Started: ps.started.UTC(), Finished: finished.UTC(),
		Requests: sum.Requests, Pages: sum.Pages, TotalSize: sum.TotalSize, Rows: sum.Rows,
		Created: ps.created, Updated: ps.updated, Deleted: ps.deleted,
		InvalidRows: ps.invalid, InvalidCells: ps.invalidCells, DuplicateKeys: ps.duplicates,
		Consistent: ok, DeletesHeld: held, PageSize: sum.PageSize,
	}
	if fetchErr != nil {
		receipt.Error = fetchErr.Error()
	}
	if err := ps.report(ctx, event.KindSynced, event.ID(name, string(event.KindSynced), ps.sync), receipt); err != nil {
		return nil, outcome{}, err
	}
	result := resultInconsistent
	if ok {
		result = resultConsistent
	}
	if fetchErr != nil {
		result = resultFailed
	} else {
		r.p.m.lastSuccess.WithLabelValues(name).Set(float64(finished.Unix()))
		if sum.Complete {
			r.state.Pages = sum.Pages
		}
	}
	return receipt, outcome{result: result, held: held, finished: finished}, fetchErr
}

// servedSize remembers the page size COMET served when it was fewer rows
// than asked, and says so once.
func (ps *pass) servedSize(sum comet.Summary) {
	r := ps.r
	served := 0
	if sum.PageSize > 0 && sum.PageSize < r.cfg.PageSize {
		served = sum.PageSize
	}
	if sum.PageSize == 0 || served == r.state.PageSize {
		return
	}
	if served != 0 {
		r.log.Info("COMET serves fewer rows a page than page_size asks: paging by what it serves", "served", served, "page_size", r.cfg.PageSize)
	} else {
		r.log.Info("COMET serves page_size rows a page again", "page_size", r.cfg.PageSize)
	}
	r.state.PageSize = served
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// logged records a pass once everything it published is acknowledged.
func (ps *pass) logged(sum comet.Summary, out outcome) {
	r, name := ps.r, ps.r.cfg.Name
	r.p.m.passes.WithLabelValues(name, out.result).Inc()
	r.p.m.rows.WithLabelValues(name).Set(float64(sum.Rows))
	r.p.m.duration.WithLabelValues(name).Observe(out.finished.Sub(ps.started).Seconds())
	r.p.m.snapshotRows.WithLabelValues(name).Set(float64(r.snap.live))
	if len(ps.undeclared) > 0 {
		r.log.Info("rows carry fields that columnKeys does not list: they are left out", "fields", sortedKeys(ps.undeclared))
	}
	r.log.Info("pass", "sync", ps.sync, "result", out.result, "pages", sum.Pages, "requests", sum.Requests, "rows", sum.Rows,
		"created", ps.created, "updated", ps.updated, "deleted", ps.deleted, "deletes_held", out.held, "duration", out.finished.Sub(ps.started).Round(time.Millisecond))
}

func (ps *pass) explainInconsistent(sum comet.Summary, fetchErr error) {
	if fetchErr != nil && sum.Pages == 0 {
		return
	}
	attrs := []any{"sync", ps.sync, "complete", sum.Complete && fetchErr == nil, "total_size_stable", sum.TotalSizeStable,
		"row_counts_match", sum.RowCountsMatch, "unique_keys", ps.keyed, "total_size", sum.TotalSize}
	if ps.duplicates > 0 {
		attrs = append(attrs, "duplicate_keys", ps.duplicates, "key_columns", ps.r.cfg.Key, "example_key", ps.firstDup)
	}
	if ps.invalid > 0 {
		attrs = append(attrs, "invalid_rows", ps.invalid, "example", ps.firstInvalid)
	}
	if n := ps.r.state.Inconsistent; n > 1 {
		attrs = append(attrs, "inconsistent_passes", n)
	}
	// An error at the alarm, then every 100 passes; a warning between.
	if n := ps.r.state.Inconsistent; (n == InconsistentAlarm || n > 0 && n%100 == 0) && fetchErr == nil {
		ps.r.log.Error(fmt.Sprintf("no consistent pass for %d passes in a row: no deletes until one is", n), attrs...)
		return
	}
	ps.r.log.Warn("pass not consistent: no deletes this time", attrs...)
}

// InconsistentAlarm is how many passes in a row may read every page and
// still not be consistent before the producer logs it as an error (then
// every 100 passes) and status says the report needs attention: its
// deletes wait meanwhile.
const InconsistentAlarm = 10

// explainCells logs, once per pass, the cells that did not convert.
func (ps *pass) explainCells() {
	if ps.invalidCells == 0 {
		return
	}
	ps.r.log.Warn("cells that do not convert to their column's type are published as null; their rows are kept",
		"sync", ps.sync, "invalid_cells", ps.invalidCells, "example", ps.firstCell)
}
