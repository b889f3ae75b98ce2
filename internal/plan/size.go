package plan

import (
	"fmt"

	"github.com/cometstream/cometstream/internal/comet"
)

// Origin says where a report's page count came from.
type Origin string

// The origins of a page count. The zero Origin means none is known.
const (
	// FromLastPass is the producer's state record: the pages of its last
	// complete pass.
	FromLastPass Origin = "last pass"
	// FromPage0 is one request for page 0 made now: lastPage + 1.
	FromPage0 Origin = "page 0 now"
)

// Size is what is known of how many pages a pass over a report makes.
type Size struct {
	// From is where Pages came from; empty when nothing is known, and
	// Unknown says why.
	From Origin
	// Pages is the page count measured, at Served rows a page.
	Pages int
	// Served is the rows a page COMET served when Pages was measured; 0
	// when not known. Capped says that was fewer than asked, so Served is
	// the most this deployment serves.
	Served int
	Capped bool
	// Rows is the report's totalSize when measured, if RowsKnown.
	Rows      int
	RowsKnown bool
	// Unknown says why no page count is known.
	Unknown string
}

// PagesFor is the page count of rows rows served size rows a page, as
// COMET computes lastPage: at least one page, even for an empty report.
func PagesFor(rows, size int) int { return comet.LastPageOf(rows, size) + 1 }

// ServedAt returns the rows a page COMET serves when asked for pageSize,
// from what s knows: pageSize, or the cap when that is smaller. ok is false
// when it cannot tell, that is when pageSize is larger than what COMET was
// last seen to serve and no cap was seen (it may cap anywhere between).
func (s Size) ServedAt(pageSize int) (served int, ok bool) {
	switch {
	case s.Capped && s.Served > 0:
		return min(pageSize, s.Served), true
	case s.Served > 0 && pageSize > s.Served:
		return 0, false
	}
	return pageSize, true
}

// PagesAt returns the pages a pass asking pageSize rows a page makes, and a
// note when they differ from those measured. A page count measured at the
// size COMET would serve now holds as it is (so does one whose page size
// is not known); otherwise it is recomputed from the rows. ok is false when
// nothing is known, or when the page size changed and the rows or what
// COMET would serve are not known: page 0 has to be asked.
func (s Size) PagesAt(pageSize int) (pages int, note string, ok bool) {
	if s.From == "" || s.Pages < 1 {
		return 0, "", false
	}
	if s.Served == 0 {
		return s.Pages, "", true
	}
	served, ok := s.ServedAt(pageSize)
	if !ok {
		return 0, "", false
	}
	if served == s.Served {
		return s.Pages, "", true
	}
	if !s.RowsKnown {
		return 0, "", false
	}
	pages = PagesFor(s.Rows, served)
	return pages, fmt.Sprintf("%d rows at %d a page (%s had %d pages at %d)", s.Rows, served, s.From, s.Pages, s.Served), true
}
