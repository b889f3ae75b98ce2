package producer

import "github.com/cometstream/cometstream/internal/comet"

// consistent is the definition of a pass whose row set can be trusted for
// deletes and for confirming content-keyed rows: every page from 0 to
// lastPage arrived without error, totalSize never changed between pages,
// every page held the rows totalSize and the served page size imply, and
// the distinct keys seen equal totalSize, none repeated and none invalid.
//
// Even a consistent pass is not proof on its own: a delete above and an
// insert below, landing between two pages, move a live row into a page
// already fetched without changing any count. That is why a delete (and a
// content-keyed create) needs two consistent passes in a row.
//
// Cells that did not convert to their column's type do not count against
// a pass: the row is there, with the cell null.
func consistent(sum comet.Summary, fetchErr error, keyed, duplicates, invalid int) bool {
	return fetchErr == nil && sum.Complete && sum.TotalSizeStable && sum.RowCountsMatch &&
		keyed == sum.TotalSize && duplicates == 0 && invalid == 0
}
