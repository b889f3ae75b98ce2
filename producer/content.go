package producer

import (
	"context"

	"github.com/cometstream/cometstream/event"
)

// A content-keyed report (key ["*"]) has no identity but a row's content,
// so a row that moved into a page already fetched (an insert at the top
// while a match is live) looks exactly like a second identical row. Such a
// report therefore publishes a row only when two consecutive consistent
// passes agree it exists: a pass collects the rows the snapshot lacks, and
// the next consistent pass, which follows at once, publishes those it has
// too. Deletes need two consistent passes as for any report.

// freshRows are content-keyed rows of a pass that the snapshot lacks, their
// canonical JSON back to back in one buffer.
type freshRows struct {
	buf  []byte
	rows []freshRow
}

type freshRow struct {
	idx        int32
	start, end int
	hash       event.Hash
}

// contentRow takes one row of a content-keyed report.
func (ps *pass) contentRow(canonical []byte, h event.Hash) error {
	r := ps.r
	ps.content[h]++
	token := event.ContentToken(h, ps.content[h])
	idx, known := r.snap.find(token)
	if !known {
		idx = r.snap.add(token)
	}
	e := &r.snap.entries[idx]
	e.seen = ps.n
	ps.keyed++
	if len(r.suspects) > 0 {
		delete(r.suspects, token)
	}
	if e.live {
		return nil // the token is the content: nothing can have changed
	}
	start := len(ps.fresh.buf)
	ps.fresh.buf = append(ps.fresh.buf, canonical...)
	ps.fresh.rows = append(ps.fresh.rows, freshRow{idx: idx, start: start, end: len(ps.fresh.buf), hash: h})
	return nil
}

// confirmContent publishes the content-keyed rows this pass and the last
// consistent one agree on, when this pass is consistent, and returns how
// many new rows wait for the next pass. An inconsistent pass confirms
// nothing and breaks the chain.
func (ps *pass) confirmContent(ctx context.Context, consistent bool) (int, error) {
	r := ps.r
	if !consistent {
		r.pendingCreates = nil
		return 0, nil
	}
	pending := make(map[string]struct{}, len(ps.fresh.rows))
	for _, f := range ps.fresh.rows {
		token := r.snap.token(f.idx)
		if _, ok := r.pendingCreates[token]; !ok {
			pending[token] = struct{}{}
			continue
		}
		if err := ps.publishRow(ctx, f.idx, nil, ps.fresh.buf[f.start:f.end], f.hash); err != nil {
			return 0, err
		}
	}
	r.pendingCreates = pending
	return len(pending), nil
}
