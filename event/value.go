package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/cometstream/cometstream/internal/jsonscan"
)

// ValueKind says which JSON form a Value takes.
type ValueKind uint8

// The kinds of value a row cell can hold.
const (
	Null   ValueKind = iota // JSON null
	Number                  // a JSON number, kept as the exact digits received
	Text                    // a JSON string
)

// String names the kind: null, number or text.
func (k ValueKind) String() string {
	switch k {
	case Null:
		return "null"
	case Number:
		return "number"
	case Text:
		return "text"
	}
	return fmt.Sprintf("ValueKind(%d)", uint8(k))
}

// Value is one row cell in its contract form (docs/events.md):
// NUMBER and AMOUNT are numbers holding exactly the digits received, STRING
// and IMAGELINK are text, DATE is text "YYYY-MM-DD", DATETIME is text
// "YYYY-MM-DDTHH:MM:SS.mmmZ" and a missing value is Null.
//
// The zero Value is Null.
type Value struct {
	Kind ValueKind
	// Raw holds the number literal for Number and the text for Text.
	Raw string
}

// NullValue, NumberValue and TextValue build values of each kind.
func NullValue() Value { return Value{} }

// NumberValue returns a Number holding literal, which must be a valid JSON number.
func NumberValue(literal string) Value { return Value{Kind: Number, Raw: literal} }

// TextValue returns a Text value.
func TextValue(s string) Value { return Value{Kind: Text, Raw: s} }

// IsNull reports whether v is null.
func (v Value) IsNull() bool { return v.Kind == Null }

// String returns the number literal or the text; "" for null.
func (v Value) String() string { return v.Raw }

// Equal reports whether two values are identical in their contract form.
func (v Value) Equal(w Value) bool { return v.Kind == w.Kind && v.Raw == w.Raw }

// Date parses a DATE value ("YYYY-MM-DD") as midnight UTC.
func (v Value) Date() (time.Time, error) {
	if v.Kind != Text {
		return time.Time{}, fmt.Errorf("value is not a date")
	}
	return time.ParseInLocation(DateLayout, v.Raw, time.UTC)
}

// Time parses a DATETIME value.
func (v Value) Time() (time.Time, error) {
	if v.Kind != Text {
		return time.Time{}, fmt.Errorf("value is not a date-time")
	}
	return time.Parse(time.RFC3339Nano, v.Raw)
}

// AppendJSON appends v as JSON to b.
func (v Value) AppendJSON(b []byte) []byte {
	switch v.Kind {
	case Number:
		return append(b, v.Raw...)
	case Text:
		return AppendString(b, v.Raw)
	default:
		return append(b, "null"...)
	}
}

// MarshalJSON implements json.Marshaler.
func (v Value) MarshalJSON() ([]byte, error) {
	if v.Kind == Number && !ValidNumber(v.Raw) {
		return nil, fmt.Errorf("invalid number literal %q", v.Raw)
	}
	return v.AppendJSON(nil), nil
}

// UnmarshalJSON implements json.Unmarshaler. Numbers keep their digits
// exactly; objects, arrays and booleans are refused because no COMET column
// type produces them.
func (v *Value) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return errors.New("empty value")
	}
	switch c := b[0]; {
	case c == 'n' && string(b) == "null":
		*v = Value{}
	case c == '"':
		// Fast path: no escapes and valid UTF-8, the common case; anything
		// else goes through encoding/json for its exact semantics.
		if len(b) >= 2 && b[len(b)-1] == '"' && bytes.IndexByte(b[1:len(b)-1], '\\') < 0 && bytes.IndexByte(b[1:len(b)-1], '"') < 0 && utf8.Valid(b) && noControl(b) {
			*v = TextValue(string(b[1 : len(b)-1]))
			return nil
		}
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*v = TextValue(s)
	case c == '-' || (c >= '0' && c <= '9'):
		if !ValidNumber(string(b)) {
			return fmt.Errorf("invalid number %q", b)
		}
		*v = NumberValue(string(b))
	default:
		return fmt.Errorf("unsupported JSON value starting with %q", c)
	}
	return nil
}

func noControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 {
			return false
		}
	}
	return true
}

// ValidNumber reports whether s is a JSON number, exactly as RFC 8259 defines it.
func ValidNumber(s string) bool { return jsonscan.ValidNumber(s) }

// AppendString appends s as a JSON string. It escapes only what JSON requires
// (quotes, backslashes, control characters) plus U+2028 and U+2029, does not
// HTML-escape, and replaces invalid UTF-8 with U+FFFD, so the output equals
// encoding/json's with SetEscapeHTML(false).
func AppendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Layouts of DATE and DATETIME values in their contract form.
const (
	DateLayout     = "2006-01-02"
	DateTimeLayout = "2006-01-02T15:04:05.000Z"
)

// minMillis and maxMillis bound epoch milliseconds to years 0000–9999, the
// range the contract's four-digit layouts can express.
var (
	minMillis = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	maxMillis = time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC).UnixMilli()
)

// ParseMillis parses an epoch-milliseconds number literal. It accepts integer
// literals and integral values written with a fraction or exponent
// ("1.5e12"), and refuses values outside years 0000–9999.
func ParseMillis(lit string) (int64, error) {
	ms, err := strconv.ParseInt(lit, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(lit, 64)
		if ferr != nil || f != float64(int64(f)) {
			return 0, fmt.Errorf("%q is not whole epoch milliseconds", lit)
		}
		ms = int64(f)
	}
	if ms < minMillis || ms > maxMillis {
		return 0, fmt.Errorf("epoch milliseconds %s are outside years 0000-9999", lit)
	}
	return ms, nil
}

// FormatDate renders epoch milliseconds as a contract DATE (UTC).
func FormatDate(ms int64) string {
	var b [10]byte
	return string(appendCivil(b[:0], ms, false))
}

// FormatDateTime renders epoch milliseconds as a contract DATETIME (UTC).
func FormatDateTime(ms int64) string {
	var b [24]byte
	return string(appendCivil(b[:0], ms, true))
}

// appendCivil formats epoch milliseconds in UTC without going through
// time.Time: it runs for every date of every row. ms must be within
// minMillis..maxMillis.
func appendCivil(b []byte, ms int64, withTime bool) []byte {
	days := ms / 86400000
	rem := ms % 86400000
	if rem < 0 {
		rem += 86400000
		days--
	}
	// Howard Hinnant's civil_from_days.
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	b = append4(b, y)
	b = append(b, '-')
	b = append2(b, m)
	b = append(b, '-')
	b = append2(b, d)
	if !withTime {
		return b
	}
	b = append(b, 'T')
	b = append2(b, rem/3600000)
	b = append(b, ':')
	b = append2(b, rem/60000%60)
	b = append(b, ':')
	b = append2(b, rem/1000%60)
	b = append(b, '.')
	ms3 := rem % 1000
	b = append(b, byte('0'+ms3/100), byte('0'+ms3/10%10), byte('0'+ms3%10), 'Z')
	return b
}

func append2(b []byte, v int64) []byte { return append(b, byte('0'+v/10), byte('0'+v%10)) }

func append4(b []byte, v int64) []byte {
	return append(b, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
}
