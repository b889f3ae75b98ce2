package comet

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/jsonscan"
)

// Page is one decoded, validated page of a saved report.
type Page struct {
	ReportName string
	Columns    []event.Column
	TotalSize  int
	Page       int
	PageSize   int
	// LastPage is the last page's number: as COMET gave it, or computed
	// from totalSize and pageSize when it gave none, or a boolean.
	LastPage int
	// Prepared holds what FetchOptions.Prepare computed for the page.
	Prepared any
	// Undeclared lists, sorted, the fields rows carried that columnKeys does
	// not list (at most MaxUndeclared of them, each cut to 64 bytes). Their
	// values are left out of the rows.
	Undeclared []string

	rows      int
	width     int
	sizeHint  int           // the rows asked for: room for the values is made once
	lastGiven bool          // lastPage was a number, to be checked
	values    []event.Value // rows*width cells, row-major, aligned with Columns
	cells     []CellError   // cells that could not be converted, by row order
}

// CellError says why one cell could not be converted to its column's type.
// The cell reads as null; its row is kept.
type CellError struct {
	Row    int // index in the page
	Column string
	Type   event.ColumnType
	Reason string
}

func (e CellError) Error() string {
	return fmt.Sprintf("row %d column %q (%s): %s", e.Row, e.Column, e.Type, e.Reason)
}

// MaxUndeclared bounds how many undeclared field names a page records.
const MaxUndeclared = 32

// Len returns the number of rows on the page.
func (p *Page) Len() int { return p.rows }

// Row returns row i's values aligned with Columns. The slice aliases the
// page's storage.
func (p *Page) Row(i int) []event.Value { return p.values[i*p.width : (i+1)*p.width : (i+1)*p.width] }

// CellErrors returns the cells that could not be converted, in row order.
// Each reads as null in Row.
func (p *Page) CellErrors() []CellError { return p.cells }

// ExpectedRows returns how many rows page n should hold when the report has
// total rows at size rows a page.
func ExpectedRows(total, size, n int) int {
	rem := total - n*size
	switch {
	case rem <= 0:
		return 0
	case rem > size:
		return size
	}
	return rem
}

// minUndeclaredCap is the fewest rows a page 0 must hold to be taken for
// a cap COMET does not declare: fewer is more likely rows gone between
// COMET counting and reading them, and reading at one row a page would
// spend the user's budget on thousands of requests.
const minUndeclaredCap = 10

// Served is the rows a page COMET serves, as page 0 shows it: its
// pageSize, or the rows it holds when that is fewer than both pageSize and
// totalSize promise (a deployment that caps the page without saying so)
// and at least minUndeclaredCap.
func (p *Page) Served() int {
	if n := p.Len(); n >= minUndeclaredCap && n < p.PageSize && n < p.TotalSize {
		return n
	}
	return p.PageSize
}

// LastPageOf computes lastPage the way COMET does: 185 rows at 25 a page
// have pages 0–7.
func LastPageOf(total, size int) int {
	if total <= 0 {
		return 0
	}
	return (total+size-1)/size - 1
}

// DecodePage parses a COMET page and validates it against the request (page
// number and size). A body that is not complete JSON returns an error that
// wraps ErrTransient (a truncated body is worth retrying); a well-formed body
// that breaks the contract returns an error wrapping ErrInvalidResponse.
//
// What real deployments do does not fail the page: a pageSize smaller than
// requested (the page is read at the size COMET served), fields that
// columnKeys does not list (left out, named in Undeclared), and cells that do
// not convert to their column type (null, reported by CellErrors).
func DecodePage(body []byte, page, size int) (*Page, error) {
	return decodePage(body, page, size, false)
}

// decodePage is DecodePage; with owned, the body is handed over (the client
// read it and never touches it again): values are substrings of it, with no
// copy of the page.
func decodePage(body []byte, page, size int, owned bool) (*Page, error) {
	p, resultsAt, err := decodeEnvelope(body, size, owned)
	if err != nil {
		return nil, err
	}
	if err := p.validate(page, size); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidResponse, err)
	}
	if resultsAt >= 0 {
		if err := p.decodeResults(&jsonscan.Scanner{B: body, I: resultsAt, Valid: utf8.Valid(body)}); err != nil {
			if jsonscan.IsSyntax(err) {
				return nil, fmt.Errorf("%w: malformed JSON: %w", ErrTransient, err)
			}
			return nil, err
		}
	}
	if p.rows > p.PageSize {
		return nil, fmt.Errorf("%w: %d rows on a page of %d", ErrInvalidResponse, p.rows, p.PageSize)
	}
	return p, nil
}

// envelope fields that must be present.
const (
	hasTypes = 1 << iota
	hasNames
	hasKeys
	hasResults
	hasTotal
	hasPage
	hasPageSize
	hasLastPage
	// lastPage is not needed: totalSize and pageSize make it.
	hasAll = hasTypes | hasNames | hasKeys | hasResults | hasTotal | hasPage | hasPageSize
)

var fieldNames = []string{"columnTypes", "columnNames", "columnKeys", "results", "totalSize", "page", "pageSize", "lastPage"}

func decodeEnvelope(body []byte, size int, owned bool) (*Page, int, error) {
	// One copy of the body as a string (none when the body is ours) lets
	// every value be a substring of it.
	s := jsonscan.New
	if owned {
		s = jsonscan.NewOwned
	}
	return decodeEnvelopeWith(s(body), size)
}

func decodeEnvelopeWith(s *jsonscan.Scanner, size int) (*Page, int, error) {
	p := &Page{sizeHint: size}
	var types, names, keys []string
	seen, resultsAt := 0, -1
	syntax := func(err error) (*Page, int, error) {
		return nil, 0, fmt.Errorf("%w: malformed JSON: %w", ErrTransient, err)
	}
	if err := s.Expect('{'); err != nil {
		return syntax(err)
	}
	if s.Peek() == '}' {
		s.I++
	} else {
		for {
			field, err := s.Str()
			if err != nil {
				return syntax(err)
			}
			if err := s.Expect(':'); err != nil {
				return syntax(err)
			}
			bit := 0
			for i, n := range fieldNames {
				if n == field {
					bit = 1 << i
				}
			}
			if bit != 0 && seen&bit != 0 {
				return nil, 0, fmt.Errorf("%w: field %q appears twice", ErrInvalidResponse, field)
			}
			seen |= bit
			switch field {
			case "reportName":
				if s.Peek() == 'n' {
					err = s.Literal("null")
				} else {
					p.ReportName, err = s.Str()
				}
			case "columnTypes":
				types, err = s.Strings()
			case "columnNames":
				names, err = s.Strings()
			case "columnKeys":
				keys, err = s.Strings()
			case "results":
				resultsAt = s.I
				if s.Peek() != '[' {
					return nil, 0, fmt.Errorf("%w: results is not an array", ErrInvalidResponse)
				}
				// COMET sends the columns first; then the rows can be read in
				// this one pass. Otherwise skip them and come back.
				if seen&(hasTypes|hasNames|hasKeys) == hasTypes|hasNames|hasKeys && p.setColumns(types, names, keys) == nil {
					if _, err := event.NewSchema(p.Columns); err == nil {
						if err := p.decodeResults(s); err != nil {
							if jsonscan.IsSyntax(err) {
								return syntax(err)
							}
							return nil, 0, err
						}
						resultsAt = -2
						break
					}
				}
				err = s.Skip()
			case "totalSize":
				p.TotalSize, err = integer(s)
			case "page":
				p.Page, err = integer(s)
			case "pageSize":
				p.PageSize, err = integer(s)
			case "lastPage":
				// Some deployments may say whether this is the last page
				// instead of which page is: only a number is checked.
				if c := s.Peek(); c == 't' || c == 'f' || c == 'n' {
					_, err = s.Scalar()
				} else if p.LastPage, err = integer(s); err == nil {
					p.lastGiven = true
				}
			default:
				err = s.Skip() // including apiKeyRequestURL and curl: never kept
			}
			if err != nil {
				if jsonscan.IsSyntax(err) {
					return syntax(err)
				}
				return nil, 0, fmt.Errorf("%w: field %q: %w", ErrInvalidResponse, field, err)
			}
			if s.Peek() == ',' {
				s.I++
				continue
			}
			if err := s.Expect('}'); err != nil {
				return syntax(err)
			}
			break
		}
	}
	if s.Peek() != 0 {
		return syntax(s.Errorf("data after the top-level object"))
	}
	if seen&hasAll != hasAll {
		var missing []string
		for i, n := range fieldNames {
			if bit := 1 << i; hasAll&bit != 0 && seen&bit == 0 {
				missing = append(missing, n)
			}
		}
		return nil, 0, fmt.Errorf("%w: missing %s", ErrInvalidResponse, strings.Join(missing, ", "))
	}
	if resultsAt != -2 {
		if err := p.setColumns(types, names, keys); err != nil {
			return nil, 0, err
		}
	}
	return p, resultsAt, nil
}

func (p *Page) setColumns(types, names, keys []string) error {
	if len(types) != len(keys) || len(names) != len(keys) {
		return fmt.Errorf("%w: %d column keys, %d names, %d types", ErrInvalidResponse, len(keys), len(names), len(types))
	}
	p.Columns = make([]event.Column, len(keys))
	for i := range keys {
		// Cloned: columns outlive the page, and should not keep its body alive.
		p.Columns[i] = event.Column{Key: strings.Clone(keys[i]), Name: strings.Clone(names[i]), Type: event.ColumnType(strings.Clone(types[i]))}
	}
	return nil
}

// Limits on what a page may hold. A longer cell reads as null (a cell
// error); a longer column key or more columns make the page invalid.
const (
	maxColumns = 4096
	// MaxCellBytes bounds one value.
	MaxCellBytes = 256 << 10
	// MaxKeyBytes bounds a column key.
	MaxKeyBytes = 1024
)

func (p *Page) validate(page, size int) error {
	if len(p.Columns) == 0 {
		return fmt.Errorf("no columns")
	}
	if len(p.Columns) > maxColumns {
		return fmt.Errorf("%d columns, more than %d", len(p.Columns), maxColumns)
	}
	if _, err := event.NewSchema(p.Columns); err != nil {
		return err
	}
	for _, c := range p.Columns {
		if len(c.Key) > MaxKeyBytes {
			return fmt.Errorf("a column key of %d bytes is longer than the %d-byte limit", len(c.Key), MaxKeyBytes)
		}
		if strings.ContainsRune(c.Key, 0) {
			// No database a sink writes can name a column so, nor can
			// PostgreSQL's jsonb hold it.
			return fmt.Errorf("column key %q holds a NUL byte", c.Key)
		}
	}
	if p.Page != page {
		return fmt.Errorf("page is %d, requested %d", p.Page, page)
	}
	// A deployment may serve fewer rows than asked, and says so here; more
	// than asked, or none, is not COMET.
	if p.PageSize < 1 || p.PageSize > size {
		return fmt.Errorf("pageSize is %d, requested %d", p.PageSize, size)
	}
	if p.TotalSize < 0 {
		return fmt.Errorf("totalSize is %d", p.TotalSize)
	}
	want := LastPageOf(p.TotalSize, p.PageSize)
	if !p.lastGiven {
		p.LastPage = want
	} else if p.LastPage != want && !(p.TotalSize == 0 && p.LastPage == -1) {
		return fmt.Errorf("lastPage is %d, but totalSize %d at %d a page makes %d", p.LastPage, p.TotalSize, p.PageSize, want)
	}
	return nil
}

// integer reads a page's number field. A JSON value of another kind is
// an invalid response, not malformed JSON: the body parsed.
func integer(s *jsonscan.Scanner) (int, error) {
	if c := s.Peek(); c == '-' || (c >= '0' && c <= '9') {
		return s.Integer()
	}
	v, err := s.Scalar()
	if err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("a %s, not a number", v.Kind)
}

// decodeResults reads the results array, converting each row.
func (p *Page) decodeResults(s *jsonscan.Scanner) error {
	p.width = len(p.Columns)
	if p.values == nil && p.sizeHint > 0 {
		p.values = make([]event.Value, 0, min(p.sizeHint, MaxPageSize)*p.width)
	}
	index := make(map[string]int, p.width)
	for i, c := range p.Columns {
		index[c.Key] = i
	}
	var undeclared map[string]struct{}
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: results row %d: %s", ErrInvalidResponse, p.rows, fmt.Sprintf(format, args...))
	}
	if err := s.Expect('['); err != nil {
		return err
	}
	if s.Peek() == ']' {
		s.I++
		return nil
	}
	set := make([]bool, p.width)
	for {
		if s.Peek() != '{' {
			return invalid("not an object")
		}
		s.I++
		row := len(p.values)
		p.values = append(p.values, make([]event.Value, p.width)...)
		clear(set)
		if s.Peek() == '}' {
			s.I++
		} else {
			for {
				raw, escaped, err := s.StringBytes()
				if err != nil {
					return err
				}
				if err := s.Expect(':'); err != nil {
					return err
				}
				var key string
				var col int
				var known bool
				if escaped {
					if key, err = jsonscan.Unescape(raw, s.I); err != nil {
						return err
					}
					col, known = index[key]
				} else {
					col, known = index[string(raw)] // no allocation
					if known {
						key = p.Columns[col].Key
					}
				}
				switch {
				case !known:
					// #result_id# is the position, never data; anything else
					// is a field columnKeys does not list: left out, named.
					if len(raw) == 0 || raw[0] != '#' {
						if _, ok := undeclared[string(raw)]; !ok && len(undeclared) < MaxUndeclared {
							if undeclared == nil {
								undeclared = map[string]struct{}{}
							}
							if key == "" {
								key = string(raw)
							}
							undeclared[jsonscan.Truncate(key, 64)] = struct{}{}
						}
					}
					if err := s.Skip(); err != nil {
						return err
					}
				case set[col]:
					return invalid("column %q appears twice", jsonscan.Truncate(key, 64))
				default:
					set[col] = true
					c := p.Columns[col]
					cv, reason, err := p.cell(s, c)
					if err != nil {
						return err
					}
					if reason != "" {
						p.cells = append(p.cells, CellError{Row: p.rows, Column: c.Key, Type: c.Type, Reason: reason})
					}
					p.values[row+col] = cv
				}
				if s.Peek() == ',' {
					s.I++
					continue
				}
				if err := s.Expect('}'); err != nil {
					return err
				}
				break
			}
		}
		p.rows++
		if s.Peek() == ',' {
			s.I++
			continue
		}
		if err := s.Expect(']'); err != nil {
			return err
		}
		for k := range undeclared {
			p.Undeclared = append(p.Undeclared, strings.Clone(k))
		}
		slices.Sort(p.Undeclared)
		return nil
	}
}

// cell reads one cell of column c. A value that does not convert (a
// boolean or an object in a NUMBER column, "1.234,50" in AMOUNT, a value
// over MaxCellBytes) reads as null with a reason; only malformed JSON is an
// error.
func (p *Page) cell(s *jsonscan.Scanner, c event.Column) (event.Value, string, error) {
	if k := s.Peek(); k == '{' || k == '[' {
		if err := s.Skip(); err != nil {
			return event.Value{}, "", err
		}
		return event.Value{}, map[byte]string{'{': "an object", '[': "an array"}[k] + " is not a cell value", nil
	}
	v, err := s.Scalar()
	if err != nil {
		return event.Value{}, "", err
	}
	if len(v.Text) > MaxCellBytes {
		return event.Value{}, fmt.Sprintf("value of %d bytes is longer than the %d-byte limit", len(v.Text), MaxCellBytes), nil
	}
	cv, reason := convert(c.Type, v)
	return cv, reason, nil
}

// convert turns a cell as COMET sent it into its contract form. A non-empty
// reason says why it could not.
func convert(t event.ColumnType, v jsonscan.Scalar) (event.Value, string) {
	if v.Kind == jsonscan.KindNull {
		return event.Value{}, ""
	}
	switch t {
	case event.TypeNumber, event.TypeAmount:
		switch {
		case v.Kind == jsonscan.KindNumber:
			return event.NumberValue(v.Text), ""
		case v.Kind == jsonscan.KindString && v.Text == "":
			return event.Value{}, ""
		case v.Kind == jsonscan.KindString && event.ValidNumber(strings.TrimSpace(v.Text)):
			return event.NumberValue(strings.TrimSpace(v.Text)), ""
		}
		return event.Value{}, fmt.Sprintf("%s is not a number", v.Kind)
	case event.TypeString, event.TypeImageLink:
		return event.TextValue(v.Text), ""
	case event.TypeDate, event.TypeDateTime:
		return convertTime(t, v)
	}
	return event.Value{}, "unknown column type"
}

func convertTime(t event.ColumnType, v jsonscan.Scalar) (event.Value, string) {
	format := event.FormatDate
	if t == event.TypeDateTime {
		format = event.FormatDateTime
	}
	text := v.Text
	if v.Kind == jsonscan.KindString {
		text = strings.TrimSpace(text)
		if text == "" {
			return event.Value{}, ""
		}
		if !event.ValidNumber(text) {
			// Already a calendar date or an RFC 3339 time: normalise to UTC.
			if ts, err := time.Parse(time.RFC3339Nano, text); err == nil {
				return event.TextValue(format(ts.UnixMilli())), ""
			}
			if t == event.TypeDate {
				if d, err := time.ParseInLocation(event.DateLayout, text, time.UTC); err == nil {
					return event.TextValue(d.Format(event.DateLayout)), ""
				}
			}
			return event.Value{}, "string is neither epoch milliseconds nor a date"
		}
	} else if v.Kind != jsonscan.KindNumber {
		return event.Value{}, fmt.Sprintf("%s is not epoch milliseconds", v.Kind)
	}
	ms, err := event.ParseMillis(text)
	if err != nil {
		return event.Value{}, jsonscan.Truncate(err.Error(), 120)
	}
	return event.TextValue(format(ms)), ""
}
