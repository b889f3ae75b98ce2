package comet

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds the nesting of JSON values the scanner skips.
const maxDepth = 64

// errEOF reports input that ends in the middle of a value: a truncated body.
var errEOF = errors.New("unexpected end of JSON input")

// scanner is a small JSON reader over a byte slice. It reads exactly the
// shapes a COMET page has and skips the rest; it never recurses, so hostile
// nesting cannot exhaust the stack.
type scanner struct {
	b []byte
	i int
	// src, when set, is b as a string: strings and numbers without escapes
	// are taken from it as substrings, without allocating. valid says b is
	// valid UTF-8 as a whole, so no string needs checking on its own.
	src   string
	valid bool
}

// syntaxError reports malformed JSON at an offset. It never quotes the input
// beyond one character, because the input may contain the API key.
type syntaxError struct {
	msg    string
	offset int
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s at byte %d", e.msg, e.offset) }

func (s *scanner) errorf(format string, args ...any) error {
	if s.i >= len(s.b) {
		return fmt.Errorf("%w at byte %d", errEOF, s.i)
	}
	return &syntaxError{msg: fmt.Sprintf(format, args...), offset: s.i}
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

func (s *scanner) expect(c byte) error {
	if s.peek() != c {
		return s.errorf("expected %q", c)
	}
	s.i++
	return nil
}

func (s *scanner) literal(word string) error {
	if len(s.b)-s.i < len(word) {
		s.i = len(s.b)
		return s.errorf("truncated literal")
	}
	if string(s.b[s.i:s.i+len(word)]) != word {
		return s.errorf("invalid literal")
	}
	s.i += len(word)
	return nil
}

// stringBytes reads a JSON string and returns its raw contents (between the
// quotes) and whether it contains escapes.
func (s *scanner) stringBytes() ([]byte, bool, error) {
	if s.peek() != '"' {
		return nil, false, s.errorf("expected string")
	}
	s.i++
	start, escaped := s.i, false
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			raw := s.b[start:s.i]
			s.i++
			return raw, escaped, nil
		case c == '\\':
			escaped = true
			s.i += 2
		case c < 0x20:
			return nil, false, s.errorf("control character in string")
		default:
			s.i++
			// Most bytes are plain: run through them without the switch.
			for s.i < len(s.b) {
				if c := s.b[s.i]; c < 0x20 || c == '"' || c == '\\' {
					break
				}
				s.i++
			}
		}
	}
	s.i = len(s.b)
	return nil, false, s.errorf("unterminated string")
}

// str reads a JSON string and returns its value. Invalid UTF-8 becomes U+FFFD,
// as with encoding/json.
func (s *scanner) str() (string, error) {
	raw, escaped, err := s.stringBytes()
	if err != nil {
		return "", err
	}
	if !escaped {
		if s.valid || utf8.Valid(raw) {
			if s.src != "" {
				end := s.i - 1
				return s.src[end-len(raw) : end], nil
			}
			return string(raw), nil
		}
		return string([]rune(string(raw))), nil
	}
	return unescape(raw, s.i)
}

func unescape(raw []byte, offset int) (string, error) {
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
			return "", &syntaxError{msg: "truncated escape", offset: offset}
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
				return "", &syntaxError{msg: "invalid \\u escape", offset: offset}
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
			return "", &syntaxError{msg: "invalid escape", offset: offset}
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

// number reads a JSON number and returns its literal.
func (s *scanner) number() (string, error) {
	s.ws()
	start := s.i
	if err := s.numberEnd(); err != nil {
		return "", err
	}
	if s.src != "" {
		return s.src[start:s.i], nil
	}
	return string(s.b[start:s.i]), nil
}

// numberEnd moves past a JSON number.
func (s *scanner) numberEnd() error {
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.i < len(s.b) && s.b[s.i] == '0' {
		s.i++
	} else if digits() == 0 {
		return s.errorf("invalid number")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return s.errorf("invalid number fraction")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return s.errorf("invalid number exponent")
		}
	}
	return nil
}

// integer reads a JSON number that must be a whole number fitting an int.
func (s *scanner) integer() (int, error) {
	lit, err := s.number()
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(lit)
	if err != nil {
		return 0, fmt.Errorf("number %s is not an integer", truncate(lit, 32))
	}
	return n, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// scalarKind is the JSON kind of a cell.
type scalarKind uint8

const (
	kindNull scalarKind = iota
	kindBool
	kindNumber
	kindString
)

func (k scalarKind) String() string {
	return [...]string{"null", "boolean", "number", "string"}[k]
}

// scalar is one cell as COMET sent it.
type scalar struct {
	kind scalarKind
	text string // number literal, string value, or "true"/"false"
}

// scalar reads a null, boolean, number or string. Objects and arrays are
// refused: no COMET column holds them.
func (s *scanner) scalar() (scalar, error) {
	switch c := s.peek(); {
	case c == '"':
		t, err := s.str()
		return scalar{kind: kindString, text: t}, err
	case c == 'n':
		return scalar{kind: kindNull}, s.literal("null")
	case c == 't':
		return scalar{kind: kindBool, text: "true"}, s.literal("true")
	case c == 'f':
		return scalar{kind: kindBool, text: "false"}, s.literal("false")
	case c == '-' || (c >= '0' && c <= '9'):
		lit, err := s.number()
		return scalar{kind: kindNumber, text: lit}, err
	case c == '{' || c == '[':
		return scalar{}, fmt.Errorf("nested %s where a scalar value was expected", map[byte]string{'{': "object", '[': "array"}[c])
	default:
		return scalar{}, s.errorf("invalid value")
	}
}

// skip reads and discards any JSON value, iteratively, refusing nesting deeper
// than maxDepth.
func (s *scanner) skip() error {
	var stack []byte
	for {
		switch c := s.peek(); c {
		case '{', '[':
			if len(stack) == maxDepth {
				return fmt.Errorf("JSON nested deeper than %d at byte %d", maxDepth, s.i)
			}
			s.i++
			if c == '{' {
				stack = append(stack, '}')
				if s.peek() == '}' {
					s.i++
					stack = stack[:len(stack)-1]
					break
				}
				if _, _, err := s.stringBytes(); err != nil {
					return err
				}
				if err := s.expect(':'); err != nil {
					return err
				}
				continue
			}
			stack = append(stack, ']')
			if s.peek() == ']' {
				s.i++
				stack = stack[:len(stack)-1]
				break
			}
			continue
		default:
			if err := s.skipScalar(); err != nil {
				return err
			}
		}
		// After a complete value: close containers or move to the next member.
		for {
			if len(stack) == 0 {
				return nil
			}
			top := stack[len(stack)-1]
			c := s.peek()
			if c == top {
				s.i++
				stack = stack[:len(stack)-1]
				continue
			}
			if c != ',' {
				return s.errorf("expected ',' or %q", top)
			}
			s.i++
			if top == '}' {
				if _, _, err := s.stringBytes(); err != nil {
					return err
				}
				if err := s.expect(':'); err != nil {
					return err
				}
			}
			break
		}
	}
}

// skipScalar reads a scalar without building its value.
func (s *scanner) skipScalar() error {
	switch c := s.peek(); {
	case c == '"':
		_, _, err := s.stringBytes()
		return err
	case c == 'n':
		return s.literal("null")
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.numberEnd()
	}
	return s.errorf("invalid value")
}
