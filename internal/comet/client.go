package comet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cenkalti/backoff/v4"

	"github.com/cometstream/cometstream/internal/jsonscan"
	"github.com/cometstream/cometstream/internal/retry"
)

// Defaults for Config fields left zero.
const (
	DefaultTimeout      = 60 * time.Second
	DefaultMaxBodyBytes = 64 << 20
	DefaultConcurrency  = 8
	DefaultMaxRetries   = 6
	MaxPageSize         = 1000
)

// Config configures a Client for one saved report.
type Config struct {
	// BaseURL is the COMET address, with or without a trailing slash.
	BaseURL string
	// APIKey is the report's API code. It is redacted from everything the
	// client returns.
	APIKey string
	// Limiter is shared by every report of the same source and user; every
	// request, retries included, goes through it. Build it with NewLimiter.
	Limiter *Limiter
	// HTTPClient defaults to a client that does not follow redirects.
	HTTPClient *http.Client
	// Timeout bounds one request, body included.
	Timeout time.Duration
	// MaxBodyBytes bounds one response body.
	MaxBodyBytes int64
	// Concurrency bounds the requests of one Fetch in flight at once.
	Concurrency int
	// MaxRetries bounds retries of one page; Backoff shapes the waits.
	MaxRetries int
	Backoff    Backoff
	Logger     *slog.Logger
	// OnRequest, when set, is called after every HTTP request (for metrics).
	OnRequest func(RequestInfo)
	// Gate, when set, is asked before every request, after the rate
	// limiter: an error stops the fetch (a producer that lost its lease
	// must not spend the user's budget).
	Gate func() error
	// Path is the report's path template below BaseURL, with {page} and
	// {size} once each (ValidatePath); empty means DefaultPath. Some
	// deployments put the report template id in it.
	Path string
	// Params are report-specific filters sent as query parameters after
	// API_KEY, URL-encoded, in name order (ValidateParams).
	Params map[string]string
}

// Backoff shapes the exponential, jittered waits between retries.
type Backoff struct {
	Initial    time.Duration // default 500ms
	Max        time.Duration // default 30s
	MaxElapsed time.Duration // default 3m; 0 keeps the default
}

// RequestInfo describes one HTTP request, for metrics.
type RequestInfo struct {
	Page     int
	Status   int // 0 when no response arrived
	Class    error
	Duration time.Duration
	Wait     time.Duration // time spent waiting for a rate-limiter token
}

// Client fetches pages of one saved report.
type Client struct {
	cfg     Config
	base    string
	path    string
	query   string // "&name=value…" of Params
	redact  redactor
	log     *slog.Logger
	httpc   *http.Client
	retries int
}

// New returns a client. It fails when BaseURL is not an absolute http(s) URL,
// the key is empty or no limiter is given.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("base_url %q is not an absolute http(s) URL", cfg.BaseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("base_url %q must not have a query or fragment", cfg.BaseURL)
	}
	if cfg.APIKey == "" {
		return nil, errors.New("empty API key")
	}
	if cfg.Limiter == nil {
		return nil, errors.New("no rate limiter")
	}
	if cfg.Path == "" {
		cfg.Path = DefaultPath
	}
	if err := ValidatePath(cfg.Path); err != nil {
		return nil, err
	}
	if err := ValidateParams(cfg.Params); err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = DefaultMaxRetries
	}
	if cfg.Backoff.Initial <= 0 {
		cfg.Backoff.Initial = 500 * time.Millisecond
	}
	if cfg.Backoff.Max <= 0 {
		cfg.Backoff.Max = 30 * time.Second
	}
	if cfg.Backoff.MaxElapsed <= 0 {
		cfg.Backoff.MaxElapsed = 3 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	httpc := cfg.HTTPClient
	if httpc == nil {
		httpc = &http.Client{
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			// The key is in the query string: never carry it to wherever a
			// redirect points.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		httpc.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	}
	return &Client{
		cfg:     cfg,
		base:    strings.TrimRight(cfg.BaseURL, "/"),
		path:    cfg.Path,
		query:   EncodeParams(cfg.Params),
		redact:  newRedactor(cfg.APIKey),
		log:     cfg.Logger,
		httpc:   httpc,
		retries: max(cfg.MaxRetries, 0),
	}, nil
}

// DefaultPath is the path of a saved-report page on most deployments.
const DefaultPath = "/data-backend/api/public/areports/run/{page}/{size}/"

// ValidatePath checks a report path template: it starts with "/", holds
// {page} and {size} once each, and has no query or fragment.
func ValidatePath(path string) error {
	switch {
	case !strings.HasPrefix(path, "/"):
		return fmt.Errorf("path %q must start with /", path)
	case strings.Count(path, "{page}") != 1 || strings.Count(path, "{size}") != 1:
		return fmt.Errorf("path %q must contain {page} and {size} once each", path)
	case strings.ContainsAny(path, "?#"):
		return fmt.Errorf("path %q must not have a query or fragment: report filters go in params", path)
	}
	rest := strings.NewReplacer("{page}", "0", "{size}", "1").Replace(path)
	if strings.ContainsAny(rest, "{} \t\n") {
		return fmt.Errorf("path %q holds a brace or a space outside {page} and {size}", path)
	}
	if _, err := url.Parse(rest); err != nil {
		return fmt.Errorf("path %q is not a URL path: %w", path, err)
	}
	return nil
}

// ValidateParams checks report filters: non-empty names, and none named
// API_KEY (in any case), which would replace or shadow the key.
func ValidateParams(params map[string]string) error {
	for name := range params {
		if name == "" {
			return errors.New("a parameter has an empty name")
		}
		if strings.EqualFold(name, "API_KEY") {
			return fmt.Errorf("parameter %q would shadow the API key, which comes from api_key_env or api_key_file", name)
		}
	}
	return nil
}

// EncodeParams renders params as "&name=value…" in name order, URL-encoded.
func EncodeParams(params map[string]string) string {
	var b strings.Builder
	for _, n := range slices.Sorted(maps.Keys(params)) {
		b.WriteByte('&')
		b.WriteString(url.QueryEscape(n))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(params[n]))
	}
	return b.String()
}

// pageURL returns the address of a page with the given key text: the real
// key for the request only, Redacted for anything shown.
func (c *Client) pageURL(page, size int, key string) string {
	path := strings.NewReplacer("{page}", strconv.Itoa(page), "{size}", strconv.Itoa(size)).Replace(c.path)
	return c.base + path + "?API_KEY=" + key + c.query
}

// RedactedURL returns the address of a page with the key replaced: what
// errors and logs may show.
func (c *Client) RedactedURL(page, size int) string {
	return c.pageURL(page, size, Redacted)
}

// FetchPage fetches and decodes one page, retrying transient failures and
// 429s. The returned error is an *Error.
func (c *Client) FetchPage(ctx context.Context, page, size int) (*Page, error) {
	p, _, err := c.fetchPage(ctx, page, size, fetchMode{})
	return p, err
}

// fetchMode says how one page of a Fetch is requested.
type fetchMode struct {
	// tokenHeld: the first request's rate-limiter token was already taken
	// by the caller.
	tokenHeld bool
	// retryGate, when set, is waited on before every retry.
	retryGate func(context.Context) error
}

// fetchPage fetches one page with retries and returns how many requests it
// made.
func (c *Client) fetchPage(ctx context.Context, page, size int, mode fetchMode) (*Page, int, error) {
	if size < 1 || size > MaxPageSize {
		return nil, 0, &Error{Page: page, Class: ErrInvalidResponse, Err: fmt.Errorf("page size %d outside 1..%d", size, MaxPageSize)}
	}
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(c.cfg.Backoff.Initial),
		backoff.WithMaxInterval(c.cfg.Backoff.Max),
		backoff.WithMaxElapsedTime(c.cfg.Backoff.MaxElapsed),
		backoff.WithRandomizationFactor(0.5),
	)
	requests := 0
	for attempt := 0; ; attempt++ {
		if attempt > 0 && mode.retryGate != nil {
			if err := mode.retryGate(ctx); err != nil {
				return nil, requests, &Error{Page: page, Class: ErrTransient, Err: err}
			}
		}
		if !mode.tokenHeld || attempt > 0 {
			start := time.Now()
			if err := c.cfg.Limiter.Wait(ctx); err != nil {
				return nil, requests, &Error{Page: page, Class: ErrTransient, Err: err}
			}
			c.observeWait(page, time.Since(start))
		}
		if c.cfg.Gate != nil {
			if err := c.cfg.Gate(); err != nil {
				return nil, requests, &Error{Page: page, Class: ErrTransient, Err: err}
			}
		}
		requests++
		p, retryAfter, err := c.attempt(ctx, page, size)
		if err == nil {
			return p, requests, nil
		}
		if retryAfter > 0 {
			// COMET's limit is the user's: every report of it waits.
			c.cfg.Limiter.Pause(time.Now().Add(retryAfter))
		}
		if !retryable(err) || ctx.Err() != nil {
			return nil, requests, err
		}
		wait := bo.NextBackOff()
		if attempt >= c.retries || wait == backoff.Stop {
			return nil, requests, err
		}
		if retryAfter > wait {
			wait = retryAfter
		}
		c.log.Warn("comet request failed, retrying", "page", page, "attempt", attempt+1, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, requests, &Error{Page: page, Class: ErrTransient, Err: ctx.Err()}
		case <-t.C:
		}
	}
}

func (c *Client) observeWait(page int, d time.Duration) {
	if c.cfg.OnRequest != nil && d > 0 {
		c.cfg.OnRequest(RequestInfo{Page: page, Wait: d, Status: -1})
	}
}

func retryable(err error) bool {
	return errors.Is(err, ErrTransient) || errors.Is(err, ErrRateLimited)
}

// maxRetryAfter caps how long a Retry-After header can make us wait.
const maxRetryAfter = 2 * time.Minute

// attempt makes one request. It returns how long COMET asked us to wait
// before retrying (429/503 Retry-After).
func (c *Client) attempt(ctx context.Context, page, size int) (p *Page, retryAfter time.Duration, err error) {
	start := time.Now()
	status := 0
	defer func() {
		if c.cfg.OnRequest != nil {
			info := RequestInfo{Page: page, Status: status, Duration: time.Since(start)}
			var ce *Error
			if errors.As(err, &ce) {
				info.Class = ce.Class
			}
			c.cfg.OnRequest(info)
		}
	}()
	fail := func(class error, e error) (*Page, time.Duration, error) {
		return nil, retryAfter, &Error{Page: page, Status: status, Class: class, Err: c.redact.error(e, c.RedactedURL(page, size))}
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.pageURL(page, size, url.QueryEscape(c.cfg.APIKey)), nil)
	if err != nil {
		return fail(ErrInvalidResponse, fmt.Errorf("build request: %w", err))
	}
	req.Header.Set("Accept", "application/json")
	// Counted by the user's limiter when it is written, not when its token
	// was taken (see Limiter).
	var admitted slot
	var admitErr error
	once := false
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) {
			if !once {
				once = true
				admitted, admitErr = c.cfg.Limiter.admit(ctx)
			}
		},
		WroteRequest: func(httptrace.WroteRequestInfo) { admitted.wrote(time.Now()) },
	}))
	resp, err := c.httpc.Do(req)
	if admitErr != nil && err == nil {
		resp.Body.Close()
		err = admitErr
	}
	if err != nil {
		return fail(ErrTransient, err)
	}
	defer resp.Body.Close()
	status = resp.StatusCode
	switch {
	case status == http.StatusNotFound:
		drain(resp.Body)
		return fail(ErrReportUnavailable, fmt.Errorf("COMET answered HTTP 404: the API key is refused (report deleted or key revoked), or base_url or path is wrong (%s)", c.RedactedURL(page, size)))
	case status == http.StatusUnauthorized, status == http.StatusForbidden, status == http.StatusGone:
		drain(resp.Body)
		return fail(ErrReportUnavailable, fmt.Errorf("COMET refused the API key with HTTP %d", status))
	case status == http.StatusTooManyRequests:
		drain(resp.Body)
		retryAfter = retryAfterOr(resp.Header.Get("Retry-After"), time.Second)
		return fail(ErrRateLimited, fmt.Errorf("HTTP 429, Retry-After %s", retryAfter))
	case status >= 500:
		head := c.describeBody(resp)
		if status == http.StatusServiceUnavailable {
			retryAfter = retryAfterOr(resp.Header.Get("Retry-After"), 0)
		}
		return fail(ErrTransient, fmt.Errorf("HTTP %d%s", status, head))
	case status >= 300 && status < 400:
		drain(resp.Body)
		return fail(ErrInvalidResponse, fmt.Errorf("redirected with HTTP %d to %s; redirects are not followed because the API key is in the URL: set base_url to the final address", status, c.redactLocation(resp.Header.Get("Location"))))
	case status != http.StatusOK:
		drain(resp.Body)
		return fail(ErrInvalidResponse, fmt.Errorf("unexpected HTTP %d", status))
	}
	body, err := readBody(resp, c.cfg.MaxBodyBytes)
	if err != nil {
		return fail(ErrTransient, fmt.Errorf("read body: %w", err))
	}
	if int64(len(body)) > c.cfg.MaxBodyBytes {
		return fail(ErrInvalidResponse, fmt.Errorf("response body larger than %d bytes", c.cfg.MaxBodyBytes))
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return fail(ErrTransient, errors.New("empty body"))
	}
	if !looksLikeJSON(body) {
		// A maintenance or proxy page served with 200: worth retrying, and
		// worth saying what it was.
		return fail(ErrTransient, fmt.Errorf("COMET answered HTTP 200 with a body that is not JSON (%s)", c.bodyHead(resp.Header.Get("Content-Type"), body)))
	}
	p, err = decodePage(body, page, size, true)
	if err != nil {
		class := ErrInvalidResponse
		if errors.Is(err, ErrTransient) {
			class = ErrTransient
		}
		return fail(class, err)
	}
	return p, 0, nil
}

// redactLocation shows where a redirect pointed without its query string,
// which would carry the key.
func (c *Client) redactLocation(loc string) string {
	u, err := url.Parse(loc)
	if err != nil {
		return "an unparseable Location"
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return c.redact.shown(u.String())
}

func drain(r io.Reader) { _, _ = io.Copy(io.Discard, io.LimitReader(r, 64<<10)) }

// readBody reads a response body of at most limit bytes (one more tells it
// was larger) into one buffer sized by Content-Length when COMET sends it,
// rather than one grown by doubling.
func readBody(resp *http.Response, limit int64) ([]byte, error) {
	n := resp.ContentLength
	if n < 0 || n > limit {
		return io.ReadAll(io.LimitReader(resp.Body, limit+1))
	}
	var buf bytes.Buffer
	buf.Grow(int(n) + 1) // +1: ReadFrom wants room to see the end
	_, err := buf.ReadFrom(io.LimitReader(resp.Body, limit+1))
	return buf.Bytes(), err
}

// looksLikeJSON reports whether a body starts like a JSON object.
func looksLikeJSON(body []byte) bool {
	b := bytes.TrimLeft(body, " \t\r\n\ufeff")
	return len(b) > 0 && b[0] == '{'
}

// quoteLimit is how much of a body an error may quote from.
const quoteLimit = 4096

// describeBody reads the start of an error response and says what it was,
// for the error message: `, text/html: "<html>…"`.
func (c *Client) describeBody(resp *http.Response) string {
	head, _ := io.ReadAll(io.LimitReader(resp.Body, quoteLimit))
	drain(resp.Body)
	if len(bytes.TrimSpace(head)) == 0 {
		return ""
	}
	return ", " + c.bodyHead(resp.Header.Get("Content-Type"), head)
}

// bodyHead renders a content type and the first bytes of a body as text
// safe to log: the key redacted first, then printable, white space
// collapsed, at most 80 characters.
func (c *Client) bodyHead(contentType string, body []byte) string {
	if contentType == "" {
		contentType = "no Content-Type"
	}
	if len(body) >= quoteLimit {
		// Cut, and the word the cut falls in dropped: it may be a part of
		// the key, escaped any way, too short for a pattern to know (white
		// space before it collapses, so the end can be what is shown).
		body = body[:quoteLimit]
		if i := bytes.LastIndexAny(body, " \t\r\n<>\"'&"); i >= 0 {
			body = body[:i]
		} else {
			body = nil
		}
	}
	text := c.redact.head(string(body))
	var b strings.Builder
	n, space := 0, false
	for _, r := range text {
		if n >= 80 {
			b.WriteString("…")
			break
		}
		switch {
		case unicode.IsSpace(r):
			if !space && n > 0 {
				b.WriteByte(' ')
				n++
			}
			space = true
			continue
		case !unicode.IsPrint(r) || r == utf8.RuneError:
			r = '?'
		}
		space = false
		b.WriteRune(r)
		n++
	}
	return fmt.Sprintf("%s: %q", jsonscan.Truncate(c.redact.shown(contentType), 80), c.redact.shown(strings.TrimSpace(b.String())))
}

// retryAfterOr reads a Retry-After header, returning def when it is absent
// or unreadable, capped at maxRetryAfter.
func retryAfterOr(h string, def time.Duration) time.Duration {
	if d, ok := retry.RetryAfter(h, time.Now(), maxRetryAfter); ok {
		return d
	}
	return min(def, maxRetryAfter)
}
