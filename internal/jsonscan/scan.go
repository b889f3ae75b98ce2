package jsonscan

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// New returns a scanner over b that takes strings and numbers as substrings
// of one string copy of b.
func New(b []byte) *Scanner {
	return &Scanner{B: b, Src: string(b), Valid: utf8.Valid(b)}
}

// NewOwned is New without the copy: strings are substrings of b itself. The
// caller hands b over: it must never change b again, or the strings taken
// from it would change too.
func NewOwned(b []byte) *Scanner {
	return &Scanner{B: b, Src: unsafe.String(unsafe.SliceData(b), len(b)), Valid: utf8.Valid(b)}
}

// IsSyntax reports whether err says the input is not well-formed or ends
// early (as opposed to well-formed JSON of the wrong shape).
func IsSyntax(err error) bool {
	var se *SyntaxError
	return errors.As(err, &se) || errors.Is(err, ErrEOF)
}

// MaxDepth bounds the nesting of JSON values the Scanner skips.
const MaxDepth = 64

// ErrEOF reports input that ends in the middle of a value: a truncated body.
var ErrEOF = errors.New("unexpected end of JSON input")

// Scanner reads JSON from B, from offset I. Its zero value with B set works;
// set Src and Valid (see New) to take strings without allocating.
type Scanner struct {
	B []byte
	I int
	// Src, when set, is B as a string: strings and numbers without escapes
	// are taken from it as substrings, without allocating. Valid says B is
	// valid UTF-8 as a whole, so no string needs checking on its own.
	Src   string
	Valid bool
}

// SyntaxError reports malformed JSON at an offset. It never quotes the input
// beyond one character, because the input may contain the API key.
type SyntaxError struct {
	Msg    string
	Offset int
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%s at byte %d", e.Msg, e.Offset) }

// Errorf returns a SyntaxError at the current offset, or ErrEOF at the end.
func (s *Scanner) Errorf(format string, args ...any) error {
	if s.I >= len(s.B) {
		return fmt.Errorf("%w at byte %d", ErrEOF, s.I)
	}
	return &SyntaxError{Msg: fmt.Sprintf(format, args...), Offset: s.I}
}

// WS skips white space.
func (s *Scanner) WS() {
	for s.I < len(s.B) {
		switch s.B[s.I] {
		case ' ', '\t', '\n', '\r':
			s.I++
		default:
			return
		}
	}
}

// Peek returns the next non-space byte, or 0 at the end.
func (s *Scanner) Peek() byte {
	s.WS()
	if s.I >= len(s.B) {
		return 0
	}
	return s.B[s.I]
}

// Expect reads the byte c, after white space.
func (s *Scanner) Expect(c byte) error {
	if s.Peek() != c {
		return s.Errorf("expected %q", c)
	}
	s.I++
	return nil
}

// Literal reads the word (null, true, false).
func (s *Scanner) Literal(word string) error {
	if len(s.B)-s.I < len(word) {
		s.I = len(s.B)
		return s.Errorf("truncated literal")
	}
	if string(s.B[s.I:s.I+len(word)]) != word {
		return s.Errorf("invalid literal")
	}
	s.I += len(word)
	return nil
}

// StringBytes reads a JSON string and returns its raw contents (between the
// quotes) and whether it contains escapes.
func (s *Scanner) StringBytes() ([]byte, bool, error) {
	if s.Peek() != '"' {
		return nil, false, s.Errorf("expected string")
	}
	s.I++
	start, escaped := s.I, false
	for s.I < len(s.B) {
		c := s.B[s.I]
		switch {
		case c == '"':
			raw := s.B[start:s.I]
			s.I++
			return raw, escaped, nil
		case c == '\\':
			escaped = true
			s.I += 2
		case c < 0x20:
			return nil, false, s.Errorf("control character in string")
		default:
			s.I++
			// Most bytes are plain: run through them without the switch.
			for s.I < len(s.B) {
				if c := s.B[s.I]; c < 0x20 || c == '"' || c == '\\' {
					break
				}
				s.I++
			}
		}
	}
	s.I = len(s.B)
	return nil, false, s.Errorf("unterminated string")
}

// Str reads a JSON string and returns its value. Invalid UTF-8 becomes U+FFFD,
// as with encoding/json.
func (s *Scanner) Str() (string, error) {
	raw, escaped, err := s.StringBytes()
	if err != nil {
		return "", err
	}
	if !escaped {
		if s.Valid || utf8.Valid(raw) {
			if s.Src != "" {
				end := s.I - 1
				return s.Src[end-len(raw) : end], nil
			}
			return string(raw), nil
		}
		return string([]rune(string(raw))), nil
	}
	return Unescape(raw, s.I)
}

// Unescape decodes the contents of a JSON string with escapes; offset is
// for the error.
func Unescape(raw []byte, offset int) (string, error) {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			if c < utf8.RuneSelf {
				out = append(out, c)
				i++
				continue
			}
			r, size := utf8.DecodeRune(raw[i:])
			out = utf8.AppendRune(out, r)
			i += size
			continue
		}
		if i+1 >= len(raw) {
			return "", &SyntaxError{Msg: "truncated escape", Offset: offset}
		}
		switch raw[i+1] {
		case '"', '\\', '/':
			out = append(out, raw[i+1])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(raw, i+2)
			if !ok {
				return "", &SyntaxError{Msg: "invalid \\u escape", Offset: offset}
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if r2, ok := hex4(raw, i+2); ok && i+1 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						out = utf8.AppendRune(out, dec)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			return "", &SyntaxError{Msg: "invalid escape", Offset: offset}
		}
		i += 2
	}
	return string(out), nil
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// Number reads a JSON number and returns its literal.
func (s *Scanner) Number() (string, error) {
	s.WS()
	start := s.I
	if err := s.NumberEnd(); err != nil {
		return "", err
	}
	if s.Src != "" {
		return s.Src[start:s.I], nil
	}
	return string(s.B[start:s.I]), nil
}

// NumberEnd moves past a JSON number.
func (s *Scanner) NumberEnd() error {
	end, problem := numberEnd(s.B, s.I)
	s.I = end
	if problem != "" {
		return s.Errorf("%s", problem)
	}
	return nil
}

// ValidNumber reports whether s is one JSON number and nothing else,
// exactly as RFC 8259 defines it.
func ValidNumber(s string) bool {
	end, problem := numberEnd(s, 0)
	return problem == "" && end == len(s)
}

// numberEnd returns the end of the JSON number that starts at b[i]; or,
// when there is none, the offset where it goes wrong and what is wrong.
func numberEnd[T string | []byte](b T, i int) (end int, problem string) {
	digits := func() int {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i - start
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if digits() == 0 {
		return i, "invalid number"
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return i, "invalid number fraction"
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return i, "invalid number exponent"
		}
	}
	return i, ""
}

// Integer reads a JSON number that must be a whole number fitting an int.
func (s *Scanner) Integer() (int, error) {
	lit, err := s.Number()
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(lit)
	if err != nil {
		return 0, fmt.Errorf("number %s is not an integer", Truncate(lit, 32))
	}
	return n, nil
}

// Truncate shortens s to n bytes for an error message.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Kind is the JSON kind of a scalar.
type Kind uint8

const (
	KindNull Kind = iota
	KindBool
	KindNumber
	KindString
)

func (k Kind) String() string {
	return [...]string{"null", "boolean", "number", "string"}[k]
}

// Scalar is one scalar value as it appeared in the input.
type Scalar struct {
	Kind Kind
	Text string // number literal, string value, or "true"/"false"
}

// Scalar reads a null, boolean, number or string. Objects and arrays are
// refused: no row cell holds them.
func (s *Scanner) Scalar() (Scalar, error) {
	switch c := s.Peek(); {
	case c == '"':
		t, err := s.Str()
		return Scalar{Kind: KindString, Text: t}, err
	case c == 'n':
		return Scalar{Kind: KindNull}, s.Literal("null")
	case c == 't':
		return Scalar{Kind: KindBool, Text: "true"}, s.Literal("true")
	case c == 'f':
		return Scalar{Kind: KindBool, Text: "false"}, s.Literal("false")
	case c == '-' || (c >= '0' && c <= '9'):
		lit, err := s.Number()
		return Scalar{Kind: KindNumber, Text: lit}, err
	case c == '{' || c == '[':
		return Scalar{}, fmt.Errorf("nested %s where a scalar value was expected", map[byte]string{'{': "object", '[': "array"}[c])
	default:
		return Scalar{}, s.Errorf("invalid value")
	}
}

// Skip reads and discards any JSON value, iteratively, refusing nesting deeper
// than MaxDepth.
func (s *Scanner) Skip() error {
	var stack []byte
	for {
		switch c := s.Peek(); c {
		case '{', '[':
			if len(stack) == MaxDepth {
				return fmt.Errorf("JSON nested deeper than %d at byte %d", MaxDepth, s.I)
			}
			s.I++
			if c == '{' {
				stack = append(stack, '}')
				if s.Peek() == '}' {
					s.I++
					stack = stack[:len(stack)-1]
					break
				}
				if _, _, err := s.StringBytes(); err != nil {
					return err
				}
				if err := s.Expect(':'); err != nil {
					return err
				}
				continue
			}
			stack = append(stack, ']')
			if s.Peek() == ']' {
				s.I++
				stack = stack[:len(stack)-1]
				break
			}
			continue
		default:
			if err := s.SkipScalar(); err != nil {
				return err
			}
		}
		// After a complete value: close containers or move to the next member.
		for {
			if len(stack) == 0 {
				return nil
			}
			top := stack[len(stack)-1]
			c := s.Peek()
			if c == top {
				s.I++
				stack = stack[:len(stack)-1]
				continue
			}
			if c != ',' {
				return s.Errorf("expected ',' or %q", top)
			}
			s.I++
			if top == '}' {
				if _, _, err := s.StringBytes(); err != nil {
					return err
				}
				if err := s.Expect(':'); err != nil {
					return err
				}
			}
			break
		}
	}
}

// SkipScalar reads a scalar without building its value.
func (s *Scanner) SkipScalar() error {
	switch c := s.Peek(); {
	case c == '"':
		_, _, err := s.StringBytes()
		return err
	case c == 'n':
		return s.Literal("null")
	case c == 't':
		return s.Literal("true")
	case c == 'f':
		return s.Literal("false")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.NumberEnd()
	}
	return s.Errorf("invalid value")
}

// Strings reads an array of strings; null reads as nil and a null element
// as "".
func (s *Scanner) Strings() ([]string, error) {
	if s.Peek() == 'n' {
		return nil, s.Literal("null")
	}
	if err := s.Expect('['); err != nil {
		return nil, err
	}
	out := []string{}
	if s.Peek() == ']' {
		s.I++
		return out, nil
	}
	for {
		if s.Peek() == 'n' {
			if err := s.Literal("null"); err != nil {
				return nil, err
			}
			out = append(out, "")
		} else {
			v, err := s.Str()
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		if s.Peek() == ',' {
			s.I++
			continue
		}
		return out, s.Expect(']')
	}
}

// Object reads a JSON object, calling member with the name of each member
// once the scanner stands at its value; member must read the value. It
// returns the first error of member unchanged, or the syntax error of the
// object itself.
func (s *Scanner) Object(member func(name string) error) error {
	if err := s.Expect('{'); err != nil {
		return err
	}
	if s.Peek() == '}' {
		s.I++
		return nil
	}
	for {
		name, err := s.Str()
		if err != nil {
			return err
		}
		if err := s.Expect(':'); err != nil {
			return err
		}
		if err := member(name); err != nil {
			return err
		}
		if s.Peek() == ',' {
			s.I++
			continue
		}
		return s.Expect('}')
	}
}
