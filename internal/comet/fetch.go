package comet

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// FetchOptions tunes one pass over a report.
type FetchOptions struct {
	// PageSize is the number of rows asked for per page (1..1000).
	PageSize int
	// ExpectPages is how many pages the previous pass saw. Until page 0
	// arrives with the real count, the client requests up to that many pages
	// (on a first pass, up to Config.Concurrency) rather than idle for page
	// 0's latency; a page requested past the real end costs one request and
	// is discarded.
	ExpectPages int
	// Progress, when set, is called after each delivered page.
	Progress func(pages, lastPage, rows int)
	// Prepare, when set, is called with each page as soon as it is decoded,
	// on the goroutine that fetched it: work done there runs in parallel
	// across pages, ahead of the in-order callback. It may set Page.Prepared.
	Prepare func(*Page)
}

// Summary describes one pass over a report.
type Summary struct {
	Started, Finished time.Time
	// Pages delivered to the callback, and HTTP requests made (retries and
	// speculative pages included).
	Pages, Requests int
	// Rows delivered, and totalSize and lastPage as page 0 reported them.
	Rows, TotalSize, LastPage int
	// TotalSizeStable is true when every page reported page 0's totalSize.
	TotalSizeStable bool
	// RowCountsMatch is true when every page held as many rows as totalSize
	// and the page size imply.
	RowCountsMatch bool
	// Complete is true when every page from 0 to lastPage was delivered.
	Complete bool
}

type pageResult struct {
	page *Page
	err  error
}

// Fetch pages through the whole report, several requests in flight, and calls
// fn with each page in page order. It stops at the first page that fails
// (after retries) or the first error from fn, and returns that error with the
// summary of what was delivered; the summary's Complete says whether the
// pass covered every page.
func (c *Client) Fetch(ctx context.Context, opts FetchOptions, fn func(*Page) error) (sum Summary, err error) {
	size := opts.PageSize
	sum = Summary{Started: time.Now(), TotalSizeStable: true, RowCountsMatch: true}
	ctx, cancel := context.WithCancel(ctx)
	var (
		wg       sync.WaitGroup
		requests atomic.Int64
	)
	defer func() {
		cancel()
		wg.Wait()
		sum.Requests = int(requests.Load())
		sum.Finished = time.Now()
	}()

	var (
		mu      sync.Mutex
		slots   = map[int]chan pageResult{}
		total   = -1 // pages to fetch, once page 0 told us
		known   = make(chan struct{})
		window  = make(chan struct{}, 2*c.cfg.Concurrency) // fetched but not yet delivered
		flights = make(chan struct{}, c.cfg.Concurrency)   // requests in flight
	)
	slot := func(p int) chan pageResult {
		mu.Lock()
		defer mu.Unlock()
		ch, ok := slots[p]
		if !ok {
			ch = make(chan pageResult, 1)
			slots[p] = ch
		}
		return ch
	}

	// The dispatcher takes a window credit, an in-flight slot and a limiter
	// token for each page in ascending order, so tokens go to pages in order.
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Until page 0 tells the page count, request ahead: as many pages as
		// the previous pass saw, or on a first pass as many as may be in
		// flight, so that page 0's latency leaves no gap in the rate budget.
		spec := opts.ExpectPages
		if spec <= 0 {
			spec = c.cfg.Concurrency
		}
		pages := func() int {
			mu.Lock()
			defer mu.Unlock()
			return total
		}
		for p := 0; ; p++ {
			select {
			case <-known:
				if p >= pages() {
					return
				}
			default:
				if p >= spec {
					select {
					case <-known:
					case <-ctx.Done():
						return
					}
					if p >= pages() {
						return
					}
				}
			}
			select {
			case window <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case flights <- struct{}{}:
			case <-ctx.Done():
				return
			}
			start := time.Now()
			if err := c.cfg.Limiter.Wait(ctx); err != nil {
				return
			}
			c.observeWait(p, time.Since(start))
			ch := slot(p)
			wg.Add(1)
			go func(p int) {
				defer wg.Done()
				page, n, err := c.fetchPage(ctx, p, size, true)
				requests.Add(int64(n))
				if err == nil && opts.Prepare != nil {
					opts.Prepare(page)
				}
				<-flights
				ch <- pageResult{page: page, err: err}
			}(p)
		}
	}()

	for p := 0; ; p++ {
		if p > 0 && p >= total {
			break
		}
		var r pageResult
		select {
		case r = <-slot(p):
		case <-ctx.Done():
			return sum, &Error{Page: p, Class: ErrTransient, Err: ctx.Err()}
		}
		<-window
		if r.err != nil {
			return sum, r.err
		}
		pg := r.page
		if p == 0 {
			sum.TotalSize, sum.LastPage = pg.TotalSize, pg.LastPage
			mu.Lock()
			total = max(pg.LastPage, 0) + 1
			mu.Unlock()
			close(known)
		}
		if pg.TotalSize != sum.TotalSize {
			sum.TotalSizeStable = false
		}
		if pg.Len() != ExpectedRows(sum.TotalSize, size, p) {
			sum.RowCountsMatch = false
		}
		if err := fn(pg); err != nil {
			return sum, err
		}
		sum.Pages++
		sum.Rows += pg.Len()
		if opts.Progress != nil {
			opts.Progress(sum.Pages, sum.LastPage, sum.Rows)
		}
	}
	sum.Complete = true
	return sum, nil
}
