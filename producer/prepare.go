package producer

import (
	"fmt"
	"slices"
	"sync"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/comet"
)

// prepared is what the goroutine that fetched a page computed for its rows,
// in parallel with other pages: canonical JSON, hash and key token. What is
// left for the in-order pass is an index lookup per row.
type prepared struct {
	columns []event.Column
	buf     []byte
	rows    []preparedRow
}

type preparedRow struct {
	start, end int // canonical JSON is buf[start:end]
	hash       event.Hash
	token      string // empty for content keys: their suffix depends on pass order
	invalid    string // why the row cannot be keyed or published
	// badCells counts the row's cells that did not convert (null now);
	// firstBad describes the first, with the row's key.
	badCells int
	firstBad string
}

// shapes caches the schema and keyer of the columns pages last came with.
type shapes struct {
	mu     sync.Mutex
	cols   []event.Column
	schema *event.Schema
	keyer  *event.Keyer
}

func (sh *shapes) get(cols []event.Column, key []string) (*event.Schema, *event.Keyer) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.schema == nil || !slices.Equal(sh.cols, cols) {
		s, err := event.NewSchema(cols)
		if err != nil {
			return nil, nil
		}
		k, err := event.NewKeyer(s, key)
		if err != nil {
			return nil, nil
		}
		sh.cols, sh.schema, sh.keyer = slices.Clone(cols), s, k
	}
	return sh.schema, sh.keyer
}

// prepare computes a page's rows; it runs on the fetching goroutine.
func (r *reporter) prepare(p *comet.Page) {
	s, k := r.shapes.get(p.Columns, r.cfg.Key)
	if s == nil {
		return // the pass reports why, in order
	}
	p.Prepared = prepareRows(p, s, k, r.p.maxRow)
}

func prepareRows(p *comet.Page, s *event.Schema, k *event.Keyer, maxRow int) *prepared {
	pp := &prepared{columns: p.Columns, rows: make([]preparedRow, p.Len())}
	cells := p.CellErrors()
	for i := range pp.rows {
		pr := &pp.rows[i]
		var bad []comet.CellError
		for len(cells) > 0 && cells[0].Row == i {
			bad = append(bad, cells[0])
			cells = cells[1:]
		}
		if c, ok := keyCell(bad, k); ok {
			// A key that does not convert cannot identify the row.
			pr.invalid = fmt.Sprintf("key column %q does not convert to %s: %s", c.Column, c.Type, c.Reason)
			continue
		}
		vals := p.Row(i)
		pr.start = len(pp.buf)
		pp.buf = s.AppendRow(pp.buf, vals)
		pr.end = len(pp.buf)
		if pr.start == 0 {
			// Rows of a page are much alike: room for all of them at once,
			// not a buffer grown by doubling.
			pp.buf = slices.Grow(pp.buf, (pr.end+pr.end/8)*(len(pp.rows)-1))
		}
		if n := pr.end - pr.start; n > maxRow {
			pr.invalid = fmt.Sprintf("row of %d bytes is larger than the %d bytes an event can carry (the NATS server's max_payload)", n, maxRow)
			pp.buf = pp.buf[:pr.start]
			pr.end = pr.start
			continue
		}
		pr.hash = event.RowHash(pp.buf[pr.start:pr.end])
		if !k.Content() {
			t, err := k.Token(vals, pr.hash)
			if err != nil {
				pr.invalid = err.Error()
			}
			pr.token = t
		}
		if len(bad) > 0 {
			pr.badCells = len(bad)
			where := "row " + string(k.AppendKey(nil, vals))
			if k.Content() {
				where = fmt.Sprintf("row %d of page %d", i, p.Page)
			}
			pr.firstBad = fmt.Sprintf("column %q of %s: %s", bad[0].Column, where, bad[0].Reason)
		}
	}
	return pp
}

// keyCell returns the first of a row's bad cells that is in a key column.
func keyCell(bad []comet.CellError, k *event.Keyer) (comet.CellError, bool) {
	for _, c := range bad {
		if k.IsKeyColumn(c.Column) {
			return c, true
		}
	}
	return comet.CellError{}, false
}
