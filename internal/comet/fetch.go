package comet

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// FetchOptions tunes one pass over a report.
type FetchOptions struct {
	// PageSize is the number of rows asked for per page (1..1000).
	PageSize int
	// ServedSize is the page size COMET served on the previous pass, when
	// it served fewer rows than asked (0: as asked). Pages requested before
	// page 0 answers use it, so a capped deployment costs no wasted request.
	ServedSize int
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
	// Rows delivered; page 0's totalSize, and the last page at PageSize.
	Rows, TotalSize, LastPage int
	// PageSize is the rows per page COMET served (Page.Served of page 0:
	// its pageSize, or the rows it held under a cap it did not declare);
	// it is smaller than FetchOptions.PageSize on deployments that cap it.
	PageSize int
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
//
// Until page 0 has succeeded only page 0 is retried: pages requested ahead
// of it make their first attempt, and wait for page 0 before retrying, so a
// failing COMET costs the user's budget one page's retries. When page 0
// says COMET serves fewer rows a page than the pages requested ahead
// assumed, those are discarded and requested again at the served size.
func (c *Client) Fetch(ctx context.Context, opts FetchOptions, fn func(*Page) error) (Summary, error) {
	pg := &pager{c: c, opts: opts, page0: make(chan struct{})}
	// One lane for the pass: its requests and retries hold one place in
	// the user's queue at a time, so other reports' passes take turns with it.
	pg.ctx, pg.cancel = context.WithCancel(withLane(ctx))
	sum := Summary{Started: time.Now(), TotalSizeStable: true, RowCountsMatch: true}
	err := pg.run(&sum, fn)
	pg.cancel()
	pg.wg.Wait()
	sum.Requests = int(pg.requests.Load())
	sum.Finished = time.Now()
	return sum, err
}

// pager is one Fetch: the page-0 gate shared by its series of requests, and
// the count of requests made.
type pager struct {
	c        *Client
	opts     FetchOptions
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	requests atomic.Int64
	page0    chan struct{} // closed once page 0 succeeded
}

func (pg *pager) run(sum *Summary, fn func(*Page) error) error {
	asked := pg.opts.PageSize
	ahead := asked
	if s := pg.opts.ServedSize; s > 0 && s < asked {
		ahead = s
	}
	spec := pg.opts.ExpectPages
	if spec <= 0 {
		spec = pg.c.cfg.Concurrency
	}
	s := pg.start(0, spec, asked, ahead)
	r := s.await(0)
	if r.err != nil {
		return r.err
	}
	close(pg.page0)
	p0 := r.page
	sum.TotalSize, sum.LastPage, sum.PageSize = p0.TotalSize, p0.LastPage, p0.PageSize
	if served := p0.Served(); served != p0.PageSize {
		pg.c.log.Warn("COMET served fewer rows than its pageSize says, though the report has more: reading it at the rows page 0 held",
			"page_size", p0.PageSize, "rows", served, "total_size", p0.TotalSize)
		sum.PageSize, sum.LastPage = served, LastPageOf(p0.TotalSize, served)
	}
	total := max(sum.LastPage, 0) + 1
	if sum.PageSize != ahead && total > 1 {
		// The pages sent ahead asked for other rows than COMET serves on a
		// page: drop them and ask again at the served size.
		s.stop()
		s = pg.start(1, total-1, sum.PageSize, sum.PageSize)
	}
	s.setTotal(total)
	for p := 0; p < total; p++ {
		if p > 0 {
			if r = s.await(p); r.err != nil {
				return r.err
			}
		}
		pgr := r.page
		if pgr.TotalSize != sum.TotalSize {
			sum.TotalSizeStable = false
		}
		if pgr.Len() != ExpectedRows(sum.TotalSize, sum.PageSize, p) {
			sum.RowCountsMatch = false
		}
		if err := fn(pgr); err != nil {
			return err
		}
		sum.Pages++
		sum.Rows += pgr.Len()
		if pg.opts.Progress != nil {
			pg.opts.Progress(sum.Pages, sum.LastPage, sum.Rows)
		}
	}
	sum.Complete = true
	return nil
}

// series requests pages from one page on, at one page size, in ascending
// order: a window credit, an in-flight slot and a rate-limiter token for
// each, so tokens go to pages in order.
type series struct {
	pg     *pager
	ctx    context.Context
	cancel context.CancelFunc
	done   sync.WaitGroup
	// size0 is the page size of page 0 when the series starts there
	// (always what was asked); size that of every later page.
	size0, size int

	mu    sync.Mutex
	slots map[int]chan pageResult
	total int // pages of the report, once page 0 told; -1 before
	known chan struct{}
	// window bounds pages fetched but not yet delivered; flights bounds
	// requests in flight.
	window, flights chan struct{}
}

// start begins requesting pages from page from on: ahead of the page count,
// at most spec pages.
func (pg *pager) start(from, spec, size0, size int) *series {
	s := &series{
		pg: pg, size0: size0, size: size, slots: map[int]chan pageResult{}, total: -1, known: make(chan struct{}),
		window:  make(chan struct{}, 2*pg.c.cfg.Concurrency),
		flights: make(chan struct{}, pg.c.cfg.Concurrency),
	}
	s.ctx, s.cancel = context.WithCancel(pg.ctx)
	pg.wg.Add(1)
	s.done.Add(1)
	go func() {
		defer pg.wg.Done()
		defer s.done.Done()
		s.dispatch(from, spec)
	}()
	return s
}

func (s *series) slot(p int) chan pageResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.slots[p]
	if !ok {
		ch = make(chan pageResult, 1)
		s.slots[p] = ch
	}
	return ch
}

// setTotal tells the dispatcher how many pages the report has.
func (s *series) setTotal(n int) {
	s.mu.Lock()
	s.total = n
	s.mu.Unlock()
	close(s.known)
}

func (s *series) pages() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// stop cancels the series' requests and waits for them.
func (s *series) stop() {
	s.cancel()
	s.done.Wait()
}

// await returns page p's result, releasing its window credit.
func (s *series) await(p int) pageResult {
	select {
	case r := <-s.slot(p):
		<-s.window
		return r
	case <-s.pg.ctx.Done():
		return pageResult{err: &Error{Page: p, Class: ErrTransient, Err: s.pg.ctx.Err()}}
	}
}

func (s *series) dispatch(from, spec int) {
	c := s.pg.c
	for p := from; ; p++ {
		select {
		case <-s.known:
			if p >= s.pages() {
				return
			}
		default:
			if p >= from+spec {
				select {
				case <-s.known:
				case <-s.ctx.Done():
					return
				}
				if p >= s.pages() {
					return
				}
			}
		}
		select {
		case s.window <- struct{}{}:
		case <-s.ctx.Done():
			return
		}
		select {
		case s.flights <- struct{}{}:
		case <-s.ctx.Done():
			return
		}
		start := time.Now()
		if err := c.cfg.Limiter.Wait(s.ctx); err != nil {
			return
		}
		c.observeWait(p, time.Since(start))
		size := s.size
		if p == 0 {
			size = s.size0
		}
		ch := s.slot(p)
		s.pg.wg.Add(1)
		s.done.Add(1)
		go func(p int) {
			defer s.pg.wg.Done()
			defer s.done.Done()
			page, n, err := c.fetchPage(s.ctx, p, size, fetchMode{tokenHeld: true, retryGate: s.pg.retryGate(p)})
			s.pg.requests.Add(int64(n))
			if err == nil && p > 0 && page.PageSize != size {
				err = &Error{Page: p, Class: ErrInvalidResponse, Err: fmt.Errorf("pageSize is %d, page 0 served %d: the page size changed during the pass", page.PageSize, size)}
			}
			if err == nil && s.pg.opts.Prepare != nil {
				s.pg.opts.Prepare(page)
			}
			<-s.flights
			ch <- pageResult{page: page, err: err}
		}(p)
	}
}

// retryGate holds back the retries of a page sent ahead until page 0 has
// succeeded; page 0 itself retries at once.
func (pg *pager) retryGate(p int) func(ctx context.Context) error {
	if p == 0 {
		return nil
	}
	return func(ctx context.Context) error {
		select {
		case <-pg.page0:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
