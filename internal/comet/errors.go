package comet

import (
	"errors"
	"fmt"
	"html"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Failure classes. Every error the client returns wraps exactly one of them
// (or a context error when the caller gave up).
var (
	// ErrReportUnavailable means COMET refused the API key: the report was
	// deleted or the key revoked (HTTP 401, 403, 404, 410). It is permanent
	// until someone fixes the report or the key.
	ErrReportUnavailable = errors.New("report unavailable")
	// ErrRateLimited means COMET answered 429 and the retries ran out.
	ErrRateLimited = errors.New("rate limited")
	// ErrTransient means a failure worth retrying (5xx, timeouts, connection
	// resets, truncated or non-JSON bodies) persisted past the retry budget.
	ErrTransient = errors.New("transient failure")
	// ErrInvalidResponse means COMET answered with a well-formed body that
	// breaks the API contract; the error says what was wrong.
	ErrInvalidResponse = errors.New("invalid response")
)

// Error is a failed request for one page. Status is the HTTP status when
// there was one.
type Error struct {
	Page   int
	Status int
	// Class is one of the sentinel errors above.
	Class error
	// Err says what happened; it never contains the API key.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "comet page %d: %v", e.Page, e.Class)
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.Status)
	}
	if e.Err != nil && !errors.Is(e.Class, e.Err) {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Unwrap lets errors.Is match both the class and the cause.
func (e *Error) Unwrap() []error { return []error{e.Class, e.Err} }

// redactor removes an API key from text, in raw and URL-escaped forms.
type redactor struct {
	secrets []string
}

func newRedactor(key string) redactor {
	if key == "" {
		return redactor{}
	}
	// The key as a server may echo it: as sent, URL-encoded (with either
	// case of hex digits), HTML-escaped (an error page quoting its link), or
	// JSON-escaped (a JSON error quoting it, with "/" written as "\/" by
	// some encoders and "&", "<", ">" as \u0026… by others).
	set := map[string]bool{}
	for _, k := range []string{key, url.QueryEscape(key), url.PathEscape(key)} {
		set[k], set[lowerHex(k)] = true, true
	}
	for k := range maps.Clone(set) {
		set[html.EscapeString(k)], set[numericEntities(k)] = true, true
		for _, v := range jsonEscapes(k) {
			set[v] = true
		}
	}
	r := redactor{}
	for s := range set {
		r.secrets = append(r.secrets, s)
	}
	// Longest first, so that a form containing another is replaced whole.
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
	return r
}

// percentHex matches a URL escape.
var percentHex = regexp.MustCompile(`%[0-9A-F]{2}`)

// lowerHex writes a URL-encoded text's escapes in lower case.
func lowerHex(s string) string { return percentHex.ReplaceAllStringFunc(s, strings.ToLower) }

// numericEntities writes the characters HTML escapes as numeric entities.
func numericEntities(s string) string {
	return strings.NewReplacer("&", "&#38;", "<", "&#60;", ">", "&#62;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

// jsonEscapes returns s as JSON encoders write it inside a string.
func jsonEscapes(s string) []string {
	plain := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
	htmlSafe := strings.NewReplacer("&", `\u0026`, "<", `\u003c`, ">", `\u003e`).Replace(plain)
	slash := func(v string) string { return strings.ReplaceAll(v, "/", `\/`) }
	return []string{plain, htmlSafe, slash(plain), slash(htmlSafe)}
}

// Redacted is what replaces the API key in any text.
const Redacted = "REDACTED"

func (r redactor) string(s string) string {
	for _, k := range r.secrets {
		s = strings.ReplaceAll(s, k, Redacted)
	}
	return s
}

// head redacts the start of a longer text: it also cuts a trailing
// fragment that could be the beginning of the key, cut off with the text.
func (r redactor) head(s string) string {
	s = r.string(s)
	for _, k := range r.secrets {
		for n := min(len(k)-1, len(s)); n >= 4; n-- {
			if strings.HasSuffix(s, k[:n]) {
				s = s[:len(s)-n] + Redacted
				break
			}
		}
	}
	return s
}

// error returns err with the key removed from its text. *url.Error carries
// the whole request URL, so its URL is replaced; any other error whose text
// still contains the key is replaced by an error with the redacted text that
// answers errors.Is like the original but cannot be unwrapped to it.
func (r redactor) error(err error, redactedURL string) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = redactedURL
	}
	msg := err.Error()
	if clean := r.string(msg); clean != msg {
		return &redactedError{msg: clean, err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }

// Is matches what the original matched (context.Canceled, timeouts) without
// handing the original, key and all, to the caller.
func (e *redactedError) Is(target error) bool { return errors.Is(e.err, target) }
