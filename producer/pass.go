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

	"github.com/cometstream/cometstream/internal/comet"
	"github.com/cometstream/cometstream/internal/event"
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

	buf     []byte
	content map[event.Hash]int // identical rows seen, for content keys

	created, updated, deleted int
	invalid, duplicates       int
	keyed                     int // distinct keys seen
	sinceCheckpoint           int
	firstInvalid, firstDup    string

	// The outcome, logged once published.
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
	// stops fetching at once but waits for what it already sent.
	pubCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*r.p.cfg.AckTimeout)
	defer cancel()

	sum, fetchErr := r.client.Fetch(ctx, comet.FetchOptions{
		PageSize:    r.cfg.PageSize,
		ExpectPages: r.state.Pages,
		Prepare:     r.prepare,
		Progress: func(pages, lastPage, rows int) {
			if r.p.cfg.Progress != nil {
				r.p.cfg.Progress(r.cfg.Name, pages, lastPage, rows)
			}
		},
	}, func(p *comet.Page) error { return ps.page(pubCtx, p) })

	receipt, err := ps.finish(ctx, pubCtx, sum, fetchErr)
	if perr := ps.pub.flush(pubCtx); perr != nil {
		r.recovered = false // the next pass recovers from the stream first
		r.p.m.passes.WithLabelValues(r.cfg.Name, resultFailed).Inc()
		return nil, fmt.Errorf("pass %s: %w", ps.sync, perr)
	}
	if receipt != nil {
		ps.logged(sum)
	}
	r.state.Checkpoint = max(r.state.Checkpoint, r.lastSeq)
	if err != nil {
		r.state.LastError, r.state.LastErrorAt = err.Error(), r.p.cfg.Now().UTC()
	} else {
		r.state.LastError, r.state.LastErrorAt = "", time.Time{}
	}
	if serr := r.saveState(pubCtx); serr != nil {
		r.recovered = false
		return receipt, errors.Join(err, serr)
	}
	return receipt, err
}

// page diffs the rows of one page and publishes their changes.
func (ps *pass) page(ctx context.Context, p *comet.Page) error {
	r := ps.r
	if ps.columns == nil {
		ps.columns = p.Columns
		if err := ps.schema(ctx, p.Columns); err != nil {
			return err
		}
	} else if !slices.Equal(ps.columns, p.Columns) {
		return ErrColumnsChanged
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
// published ones, and switches the diff to them.
func (ps *pass) schema(ctx context.Context, cols []event.Column) error {
	r := ps.r
	if r.schema != nil && slices.Equal(r.state.Columns, cols) {
		return nil
	}
	if err := r.useColumns(cols); err != nil {
		return err
	}
	if slices.Equal(r.state.Columns, cols) {
		return nil // known columns, index rebuilt after a restart
	}
	colsJSON, _ := json.Marshal(cols)
	data := event.SchemaChange{Report: r.cfg.Name, Columns: cols, Previous: r.state.Columns}
	id := event.ID(r.cfg.Name, event.KindSchema, strconv.FormatUint(r.state.Checkpoint, 10), string(colsJSON))
	if err := ps.report(ctx, event.KindSchema, id, data); err != nil {
		return err
	}
	r.log.Info("report schema", "columns", len(cols), "changed", r.state.Columns != nil)
	r.state.Columns = slices.Clone(cols)
	// Wait for the schema event before any row event relies on it.
	return ps.checkpoint(ctx)
}

// report publishes a report event.
func (ps *pass) report(ctx context.Context, kind, id string, data any) error {
	r := ps.r
	b, err := event.Encode(id, r.source, event.ReportType(kind), r.p.cfg.Now(), data)
	if err != nil {
		return err
	}
	r.p.m.events.WithLabelValues(r.cfg.Name, kind).Inc()
	return ps.pub.event(ctx, event.ReportSubject(r.p.cfg.Prefix, r.cfg.Name, kind), id, b, nil)
}

// row diffs one row against the index. canonical is the row's canonical
// JSON, h its hash, token its key token (empty for content keys).
func (ps *pass) row(ctx context.Context, vals []event.Value, canonical []byte, h event.Hash, token string) error {
	r := ps.r
	if r.keyer.Content() {
		ps.content[h]++
		token = event.ContentToken(h, ps.content[h])
	}
	idx, known := r.snap.find(token)
	if !known {
		idx = r.snap.add(token)
	}
	e := &r.snap.entries[idx]
	if known && e.seen == ps.n {
		// The same key twice in one pass: rows moved between pages, or the
		// key is not unique. The later row wins.
		ps.duplicates++
		if ps.firstDup == "" {
			ps.firstDup = strings.Clone(token)
		}
		if e.hash == h {
			return nil
		}
		// Let the first change reach the snapshot before diffing against it.
		if err := ps.pub.flush(ctx); err != nil {
			return err
		}
	} else {
		ps.keyed++
	}
	e.seen = ps.n
	if len(r.suspects) > 0 {
		delete(r.suspects, token)
	}
	if known && e.live && e.hash == h {
		return nil
	}
	// A change outlives the page (until its snapshot write is acknowledged):
	// copy the token, which may point into the page's body.
	token = strings.Clone(token)
	op, before, changed := event.OpCreated, []byte(nil), []string(nil)
	if known && e.live {
		op = event.OpUpdated
		var err error
		if before, err = r.snap.get(ctx, token); err != nil {
			return err
		}
		changed = changedColumns(r.schema, before, vals)
	}
	after := slices.Clone(canonical)
	id := event.ID(r.cfg.Name, token, op, strconv.FormatUint(e.rev, 10), hex.EncodeToString(h[:]))
	data := (&event.RowEvent{
		ID: id, Source: r.source, Token: token, Time: r.p.cfg.Now(), Report: r.cfg.Name, Op: op, Sync: ps.sync,
		Key: r.keyer.AppendKey(nil, vals), Before: before, After: after, Changed: changed,
	}).Append(nil)
	if !e.live {
		r.snap.live++
	}
	e.hash, e.live = h, true
	if op == event.OpCreated {
		ps.created++
	} else {
		ps.updated++
	}
	ps.sinceCheckpoint++
	r.p.m.events.WithLabelValues(r.cfg.Name, op).Inc()
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

// finish ends a pass: deletes when the pass can be trusted, the receipt, and
// the unavailable transitions.
func (ps *pass) finish(ctx, pubCtx context.Context, sum comet.Summary, fetchErr error) (*event.Synced, error) {
	r := ps.r
	name := r.cfg.Name
	if errors.Is(fetchErr, comet.ErrReportUnavailable) {
		var ce *comet.Error
		status := 0
		if errors.As(fetchErr, &ce) {
			status = ce.Status
		}
		if r.state.Unavailable == 0 {
			id := event.ID(name, event.KindUnavailable, strconv.FormatUint(r.state.Checkpoint, 10), strconv.Itoa(status))
			if err := ps.report(pubCtx, event.KindUnavailable, id, event.Unavailable{Report: name, Status: status, Reason: fetchErr.Error()}); err != nil {
				return nil, err
			}
			r.log.Error("report unavailable: COMET refused its API key; nothing will be deleted", "status", status)
		}
		r.state.Unavailable = status
		r.p.m.passes.WithLabelValues(name, resultUnavailable).Inc()
		if sum.Pages == 0 {
			return nil, fetchErr
		}
	} else if fetchErr == nil || sum.Pages > 0 {
		if r.state.Unavailable != 0 {
			r.log.Info("report available again")
			r.state.Unavailable = 0
		}
	}

	consistent := fetchErr == nil && sum.Complete && sum.TotalSizeStable && sum.RowCountsMatch &&
		ps.keyed == sum.TotalSize && ps.duplicates == 0 && ps.invalid == 0
	held := 0
	if consistent {
		var err error
		if held, err = ps.deletes(pubCtx); err != nil {
			return nil, err
		}
	} else if fetchErr == nil || sum.Pages > 0 {
		ps.explainInconsistent(sum, fetchErr)
	}
	if fetchErr != nil && sum.Pages == 0 {
		r.p.m.passes.WithLabelValues(name, resultFailed).Inc()
		return nil, fetchErr
	}

	finished := r.p.cfg.Now()
	receipt := &event.Synced{
		Report: name, Sync: ps.sync, Started: ps.started.UTC(), Finished: finished.UTC(),
		Requests: sum.Requests, Pages: sum.Pages, TotalSize: sum.TotalSize, Rows: sum.Rows,
		Created: ps.created, Updated: ps.updated, Deleted: ps.deleted,
		InvalidRows: ps.invalid, DuplicateKeys: ps.duplicates, Consistent: consistent, DeletesHeld: held,
	}
	if fetchErr != nil {
		receipt.Error = fetchErr.Error()
	}
	if err := ps.report(pubCtx, event.KindSynced, event.ID(name, event.KindSynced, ps.sync), receipt); err != nil {
		return nil, err
	}
	result := resultInconsistent
	if consistent {
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
	ps.result, ps.held, ps.finished = result, held, finished
	return receipt, fetchErr
}

// logged records a pass once everything it published is acknowledged.
func (ps *pass) logged(sum comet.Summary) {
	r, name := ps.r, ps.r.cfg.Name
	r.p.m.passes.WithLabelValues(name, ps.result).Inc()
	r.p.m.rows.WithLabelValues(name).Set(float64(sum.Rows))
	r.p.m.duration.WithLabelValues(name).Observe(ps.finished.Sub(ps.started).Seconds())
	r.p.m.snapshotRows.WithLabelValues(name).Set(float64(r.snap.live))
	r.log.Info("pass", "sync", ps.sync, "result", ps.result, "pages", sum.Pages, "requests", sum.Requests, "rows", sum.Rows,
		"created", ps.created, "updated", ps.updated, "deleted", ps.deleted, "deletes_held", ps.held, "duration", ps.finished.Sub(ps.started).Round(time.Millisecond))
}

func (ps *pass) explainInconsistent(sum comet.Summary, fetchErr error) {
	attrs := []any{"sync", ps.sync, "complete", sum.Complete && fetchErr == nil, "total_size_stable", sum.TotalSizeStable,
		"row_counts_match", sum.RowCountsMatch, "unique_keys", ps.keyed, "total_size", sum.TotalSize}
	if ps.duplicates > 0 {
		attrs = append(attrs, "duplicate_keys", ps.duplicates, "key_columns", ps.r.cfg.Key, "example_key", ps.firstDup)
	}
	if ps.invalid > 0 {
		attrs = append(attrs, "invalid_rows", ps.invalid, "example", ps.firstInvalid)
	}
	ps.r.log.Warn("pass not consistent: no deletes this time", attrs...)
}

// deletes handles the rows missing from a consistent pass. It returns how
// many deletes are held back.
func (ps *pass) deletes(ctx context.Context) (int, error) {
	r := ps.r
	var missing, confirmed []string
	for i := range r.snap.entries {
		if e := &r.snap.entries[i]; e.live && e.seen != ps.n {
			token := r.snap.token(int32(i))
			missing = append(missing, token)
			if _, ok := r.suspects[token]; ok {
				confirmed = append(confirmed, token)
			}
		}
	}
	r.suspects = make(map[string]struct{}, len(missing))
	for _, t := range missing {
		r.suspects[t] = struct{}{}
	}
	r.confirmSoon = len(missing) > len(confirmed) && !r.confirming
	if len(confirmed) == 0 {
		ps.releaseHold()
		return 0, nil
	}
	slices.Sort(confirmed) // a deterministic order for the stream
	rowsBefore := r.snap.live
	limit := r.cfg.MaxDeleteFraction * float64(rowsBefore)
	if float64(len(confirmed)) > limit {
		allowed, err := ps.allowed(ctx)
		if err != nil {
			return 0, err
		}
		if !allowed {
			return len(confirmed), ps.hold(ctx, len(confirmed), rowsBefore)
		}
		r.log.Warn("releasing held deletes on the operator's request", "deletes", len(confirmed), "rows", rowsBefore)
	}
	for _, token := range confirmed {
		if err := ps.delete(ctx, token); err != nil {
			return 0, err
		}
	}
	ps.releaseHold()
	return 0, nil
}

func (ps *pass) releaseHold() {
	if ps.r.state.Held != 0 {
		ps.r.log.Info("deletes no longer held")
	}
	ps.r.state.Held = 0
	ps.r.p.m.heldDeletes.WithLabelValues(ps.r.cfg.Name).Set(0)
}

// hold publishes a held event when the hold starts or its size changes.
func (ps *pass) hold(ctx context.Context, n, rowsBefore int) error {
	r := ps.r
	r.p.m.heldDeletes.WithLabelValues(r.cfg.Name).Set(float64(n))
	if r.state.Held == n {
		return nil
	}
	id := event.ID(r.cfg.Name, event.KindHeld, strconv.FormatUint(r.state.Checkpoint, 10), strconv.Itoa(n))
	data := event.Held{Report: r.cfg.Name, WouldDelete: n, RowsBefore: rowsBefore, Threshold: r.cfg.MaxDeleteFraction}
	if err := ps.report(ctx, event.KindHeld, id, data); err != nil {
		return err
	}
	r.state.Held = n
	r.log.Error("deletes held: this pass would delete more than max_delete_fraction of the report; run `cometstream allow-deletes` to release them",
		"would_delete", n, "rows", rowsBefore, "max_delete_fraction", r.cfg.MaxDeleteFraction)
	return nil
}

// allowed reports whether an operator released this report's held deletes,
// consuming the release.
func (ps *pass) allowed(ctx context.Context) (bool, error) {
	r := ps.r
	if r.allowOnce {
		r.allowOnce = false
		return true, nil
	}
	key := event.AllowDeletesKey(r.cfg.Name)
	if _, err := r.p.state.Get(ctx, key); err != nil {
		return false, nil
	}
	if err := r.p.state.Purge(ctx, key); err != nil {
		return false, fmt.Errorf("consume %s: %w", key, err)
	}
	return true, nil
}

// delete publishes a deleted event for a row missing from two consistent passes.
func (ps *pass) delete(ctx context.Context, token string) error {
	r := ps.r
	idx, _ := r.snap.find(token)
	e := &r.snap.entries[idx]
	before, err := r.snap.get(ctx, token)
	if err != nil {
		return err
	}
	id := event.ID(r.cfg.Name, token, event.OpDeleted, strconv.FormatUint(e.rev, 10), "")
	data := (&event.RowEvent{
		ID: id, Source: r.source, Token: token, Time: r.p.cfg.Now(), Report: r.cfg.Name, Op: event.OpDeleted, Sync: ps.sync,
		Key: keyFromRow(r.cfg.Key, before), Before: before,
	}).Append(nil)
	e.live = false
	r.snap.live--
	delete(r.suspects, token)
	ps.deleted++
	r.p.m.events.WithLabelValues(r.cfg.Name, event.OpDeleted).Inc()
	r.p.m.kvWrites.WithLabelValues(r.cfg.Name).Inc()
	return ps.pub.event(ctx, event.RowSubject(r.p.cfg.Prefix, r.cfg.Name, event.OpDeleted, token), id, data, &kvWrite{idx: idx, token: token, delete: true})
}

// keyFromRow builds a deleted event's key object from the stored row.
func keyFromRow(key []string, row []byte) []byte {
	if len(key) == 1 && key[0] == event.ContentKey {
		return row
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(row, &m); err != nil {
		return []byte("{}")
	}
	cols := slices.Clone(key)
	slices.Sort(cols)
	b := []byte{'{'}
	for i, c := range cols {
		if i > 0 {
			b = append(b, ',')
		}
		b = event.AppendString(b, c)
		b = append(b, ':')
		if v, ok := m[c]; ok {
			b = append(b, v...)
		} else {
			b = append(b, "null"...)
		}
	}
	return append(b, '}')
}
