package producer

import (
	"context"
	"encoding/binary"

	"github.com/cometstream/cometstream/event"
)

// A content-keyed report (key ["*"]) has no identity but a row's content,
// so a row that moved into a page already fetched (an insert at the top
// while a match is live) looks exactly like a second identical row, and a
// row that moved into a page not fetched yet is simply missing. Every count
// still matches; a pass alone cannot tell. Such a report therefore
// publishes only what two consecutive consistent passes agree on: a pass
// collects the rows the snapshot lacks and the rows it misses, and the next
// consistent pass, which follows at once, publishes the new rows it has too
// and deletes the rows it misses too.
//
// A pass that saw some content more times than the snapshot holds it (a
// surplus copy) may have seen a row twice that moved, and then missed
// another; two such passes can each miss the same row while seeing
// different rows twice (COMET ordering rows that tie on its sort column
// differently from one request to the next). When either pass of the two
// has a surplus copy, the doubtful decisions, the surplus copies and the
// deletes, need them to have seen the same rows, every one as many times;
// rows of content new to the snapshot go in as for any pair of passes.
// Two passes that misread in exactly the same way still agree: the rule
// makes a wrong decision need two identical misreadings in a row, not one.

// rowSet is what a pass saw of a content-keyed report's rows, as a
// multiset: the sum of a mix of each row's token. ok says the pass was
// consistent, surplus that it saw some content more times than the
// snapshot holds it.
type rowSet struct {
	sum     uint64
	rows    int
	ok      bool
	surplus bool
}

// add counts one row: its content hash and which copy it is.
func (s *rowSet) add(h event.Hash, copy int) {
	x := binary.LittleEndian.Uint64(h[:8]) ^ binary.LittleEndian.Uint64(h[8:]) ^ uint64(copy)*0x9e3779b97f4a7c15
	// splitmix64's finalizer, so that sums of different rows do not cancel.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	s.sum += x
	s.rows++
}

// agrees reports whether a consistent pass that saw s may settle what it
// and the pass before, which saw last, agree on: always, unless either saw
// a surplus copy, and then only when both saw the same rows.
func (s rowSet) agrees(last rowSet) bool {
	if !s.surplus && !last.surplus {
		return s.ok
	}
	return s.same(last)
}

// same reports whether two consistent passes saw the same rows.
func (s rowSet) same(o rowSet) bool { return s.ok && o.ok && s.sum == o.sum && s.rows == o.rows }

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
	copy       int // 1 for the first row of its content in the pass
}

// contentRow takes one row of a content-keyed report.
func (ps *pass) contentRow(canonical []byte, h event.Hash) error {
	r := ps.r
	n := ps.content[h] + 1
	ps.content[h] = n
	ps.rowSet.add(h, n)
	token := event.ContentToken(h, n)
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
	if n > 1 {
		ps.rowSet.surplus = true
	}
	start := len(ps.fresh.buf)
	ps.fresh.buf = append(ps.fresh.buf, canonical...)
	ps.fresh.rows = append(ps.fresh.rows, freshRow{idx: idx, start: start, end: len(ps.fresh.buf), hash: h, copy: n})
	return nil
}

// confirmContent publishes the content-keyed rows new to the snapshot
// that this pass and the last consistent one both saw, and returns how many
// new rows wait for the next pass. A row whose content the snapshot lacks
// altogether (the first copy of its content) cannot come of rows moving,
// and two such passes are enough; a further copy of content (a surplus
// copy, whether or not the snapshot holds the first) also needs the two
// passes to have seen the same rows (agreed). An
// inconsistent pass confirms nothing and breaks the chain.
func (ps *pass) confirmContent(ctx context.Context, consistent, agreed bool) (int, error) {
	r := ps.r
	if !consistent {
		r.pendingCreates = nil
		return 0, nil
	}
	pending := make(map[string]struct{}, len(ps.fresh.rows))
	for _, f := range ps.fresh.rows {
		token := r.snap.token(f.idx)
		if _, ok := r.pendingCreates[token]; !ok || (!agreed && f.copy > 1) {
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
