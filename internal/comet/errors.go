package comet

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"
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

// redactor removes an API key from text, however a server escaped it.
type redactor struct {
	key string
	// pattern matches the key with each of its characters as it is or in
	// any of the escapes servers write (pattern); secrets are whole forms
	// of it, for a key cut off at the end of a quote (head).
	pattern *regexp.Regexp
	secrets []string
}

func newRedactor(key string) redactor {
	if key == "" {
		return redactor{}
	}
	set := map[string]bool{}
	for _, k := range []string{key, url.QueryEscape(key), url.PathEscape(key)} {
		set[k] = true
		set[html.EscapeString(k)] = true
	}
	r := redactor{key: key, pattern: keyPattern(key)}
	for s := range set {
		r.secrets = append(r.secrets, s)
	}
	// Longest first, so that a form containing another is cut whole.
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
	return r
}

// keyPattern matches key with each character written as it is or as a
// server may escape it when it echoes the key: URL-encoded (with either
// case of hex digits, once or twice, "+" for a space), as an HTML entity
// (named, decimal or hexadecimal), or JSON-escaped (\uXXXX, \/, \", \\).
// The characters may be escaped each its own way, as encoders that escape
// only some do.
func keyPattern(key string) *regexp.Regexp {
	// Letters in any case, and a separator between two letters or digits
	// (a UUID's dashes) may be left out.
	var b strings.Builder
	b.WriteString("(?i)")
	runes := []rune(key)
	for i, r := range runes {
		alts := []string{regexp.QuoteMeta(string(r))}
		var pct, pct2 strings.Builder
		for _, c := range []byte(string(r)) {
			h := fmt.Sprintf("%02x", c)
			pct.WriteString("%" + anyCaseHex(h))
			pct2.WriteString("%25" + anyCaseHex(h))
		}
		alts = append(alts, pct.String(), pct2.String(),
			fmt.Sprintf("&#0*%d;?", r), "&#[xX]0*"+anyCaseHex(fmt.Sprintf("%x", r))+";?")
		if r <= 0xffff {
			alts = append(alts, `\\u`+anyCaseHex(fmt.Sprintf("%04x", r)))
		}
		alts = append(alts, namedEscapes[r]...)
		b.WriteString("(?:" + strings.Join(alts, "|") + ")")
		if !isAlnum(r) && i > 0 && i+1 < len(runes) && isAlnum(runes[i-1]) && isAlnum(runes[i+1]) {
			b.WriteString("?")
		}
	}
	return regexp.MustCompile(b.String())
}

func isAlnum(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// folded is s as the key is compared with it: in lower case, without the
// characters that are not letters or digits.
func folded(s string) string {
	return strings.Map(func(r rune) rune {
		if !isAlnum(r) {
			return -1
		}
		return unicode.ToLower(r)
	}, s)
}

// namedEscapes are the patterns of the escapes that name a character:
// form encoding's "+" for a space, HTML's named entities, JSON's
// backslash escapes.
var namedEscapes = map[rune][]string{
	' ': {`\+`}, '&': {"&amp;"}, '<': {"&lt;"}, '>': {"&gt;"}, '"': {"&quot;", `\\"`}, '\'': {"&apos;"},
	'/': {`\\/`}, '\\': {`\\\\`},
}

// anyCaseHex matches hexadecimal digits in either case.
func anyCaseHex(h string) string {
	var b strings.Builder
	for _, c := range h {
		if c >= 'a' && c <= 'f' {
			b.WriteString("[" + string(c) + strings.ToUpper(string(c)) + "]")
		} else {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// Redacted is what replaces the API key in any text.
const Redacted = "REDACTED"

func (r redactor) string(s string) string {
	if r.pattern == nil {
		return s
	}
	return r.pattern.ReplaceAllString(s, Redacted)
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

// withheld replaces a quote from COMET that still holds the API key, or a
// part of it, in a form no pattern knows (escapes within escapes).
const withheld = "(withheld: it quotes the API key)"

// shown is text COMET sent (a body's start, a header) as it may be shown:
// the key cut out however it is escaped, and the whole text withheld when
// any decoding of it still holds the key or six characters of it in a row.
func (r redactor) shown(s string) string {
	s = r.string(s)
	if r.key == "" {
		return s
	}
	key := folded(r.key)
	if key == "" {
		key = r.key
	}
	n := min(len(key), 6)
	for _, v := range decodings(s) {
		v = folded(v)
		for i := 0; i+n <= len(key); i++ {
			if strings.Contains(v, key[i:i+n]) {
				return withheld
			}
		}
	}
	return s
}

// percentEscape matches a URL escape.
var percentEscape = regexp.MustCompile(`%[0-9a-fA-F]{2}`)

// jsonUnicode matches a JSON \uXXXX escape.
var jsonUnicode = regexp.MustCompile(`\\u[0-9a-fA-F]{4}`)

// decodings returns s and what it decodes to, as HTML, JSON string and URL
// text and with "+" for a space, a few layers deep.
func decodings(s string) []string {
	seen := map[string]bool{s: true}
	views := []string{s}
	decode := []func(string) string{
		html.UnescapeString,
		func(v string) string {
			v = jsonUnicode.ReplaceAllStringFunc(v, func(e string) string {
				var r rune
				fmt.Sscanf(e[2:], "%x", &r)
				return string(r)
			})
			return strings.NewReplacer(`\/`, "/", `\"`, `"`, `\\`, `\`).Replace(v)
		},
		func(v string) string {
			// Every escape that is one, whatever else the text holds.
			return percentEscape.ReplaceAllStringFunc(v, func(e string) string {
				b, _ := hex.DecodeString(e[1:])
				return string(b)
			})
		},
		func(v string) string { return strings.ReplaceAll(v, " ", "+") },
		decodeBase64,
	}
	for round := 0; round < 4 && len(views) < 256; round++ {
		for _, v := range slices.Clone(views) {
			for _, d := range decode {
				if w := d(v); !seen[w] {
					seen[w] = true
					views = append(views, w)
				}
			}
		}
	}
	return views
}

// base64Token matches what may be base64 (standard or URL alphabet), or
// a path segment of it.
var base64Token = regexp.MustCompile(`[A-Za-z0-9+/_-]{8,}`)

// decodeBase64 appends to v what its base64-looking words decode to: each
// word, and each part of it between slashes, decoded from each of its
// first four characters (base64 glued to other text starts anywhere).
func decodeBase64(v string) string {
	var b strings.Builder
	b.WriteString(v)
	words := base64Token.FindAllString(v, 64)
	for _, w := range slices.Clone(words) {
		for _, part := range strings.Split(w, "/") {
			if len(part) >= 8 && part != w {
				words = append(words, part)
			}
		}
	}
	for _, w := range words {
		for off := 0; off < 4 && len(w)-off >= 8; off++ {
			tok := w[off:]
			tok = tok[:len(tok)/4*4]
			for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
				if d, err := enc.DecodeString(tok); err == nil {
					b.WriteString(" ")
					b.Write(d)
				}
			}
		}
	}
	return b.String()
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
