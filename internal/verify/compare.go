package verify

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/cometstream/cometstream/event"
)

// Layout says how a report's rows are matched and compared.
type Layout struct {
	// Key lists the key columns, or ["*"] for a content-keyed report.
	Key []string
	// Columns are the report's columns, typed: each is compared, as is
	// every other column an expected row has. Columns a table keeps beyond
	// them (a report that dropped a column: tables never lose one) are not.
	Columns []event.Column
	// TokenColumn is the table column holding a content-keyed row's token.
	TokenColumn string
	// ExactNumbers compares numbers exactly by value, for a database that
	// keeps every digit; otherwise they compare to about 12 significant
	// digits, as SQLite rounds them to 15.
	ExactNumbers bool
}

// ContentKeyed reports whether rows are identified by their content.
func (l *Layout) ContentKeyed() bool { return len(l.Key) == 1 && l.Key[0] == event.ContentKey }

// DiffKind says how a row differs.
type DiffKind int

// The kinds of difference.
const (
	// Missing is a row the snapshot has and the database lacks.
	Missing DiffKind = iota
	// Extra is a row the database has and the snapshot lacks.
	Extra
	// Changed is a row both have, with different values.
	Changed
)

// String names the kind: missing, extra or changed.
func (k DiffKind) String() string {
	switch k {
	case Missing:
		return "missing"
	case Extra:
		return "extra"
	case Changed:
		return "changed"
	}
	return fmt.Sprintf("DiffKind(%d)", int(k))
}

// Difference is one row that differs.
type Difference struct {
	Kind DiffKind
	// Key is the row key token: the snapshot's for a missing or changed
	// row, the one the database row's key values make for an extra row.
	Key string
	// KeyValues are the key columns' values of a keyed report's row (the
	// snapshot's, or for an extra row the database's); nil when content
	// keyed.
	KeyValues event.Row
	// Columns are the differing columns of a changed row, by column key.
	Columns []ColumnDiff
}

// ColumnDiff is one column of a changed row.
type ColumnDiff struct {
	Column             string
	Database, Snapshot event.Value
}

// Compare compares a report's rows as a database holds them with the rows
// the snapshot gives, by row key token. It returns the differences, sorted
// by kind and key, and how many rows it compared (the snapshot's rows and
// the database's extra ones).
func Compare(l Layout, want map[string]event.Row, got []event.Row) (diffs []Difference, rows int) {
	types := map[string]event.ColumnType{}
	for _, c := range l.Columns {
		types[c.Key] = c.Type
	}
	typeOf := func(col string, v event.Value) event.ColumnType {
		if t, ok := types[col]; ok {
			return t
		}
		if v.Kind == event.Number { // a column the layout does not know yet
			return event.TypeNumber
		}
		return event.TypeString
	}
	// A database row matches by its token column if content-keyed, by its
	// key values otherwise; a snapshot row by its token, or its key values.
	match := func(tok string, row event.Row) string {
		if l.ContentKeyed() {
			if tok == "" {
				return row[l.TokenColumn].Raw
			}
			return tok
		}
		parts := make([]string, len(l.Key))
		for i, k := range l.Key {
			v := row[k]
			parts[i] = matchText(typeOf(k, v), v)
		}
		return strings.Join(parts, "\x00")
	}
	// Several rows may match one key only if numbers differ past what the
	// comparison sees; they pair up in order.
	byKey := map[string][]event.Row{}
	for _, r := range got {
		k := match("", r)
		byKey[k] = append(byKey[k], r)
	}
	for _, tok := range slices.Sorted(maps.Keys(want)) {
		w := want[tok]
		k := match(tok, w)
		rs := byKey[k]
		if len(rs) == 0 {
			diffs = append(diffs, Difference{Kind: Missing, Key: tok, KeyValues: l.keyValues(w)})
			continue
		}
		byKey[k] = rs[1:]
		if cols := l.changed(w, rs[0], typeOf); len(cols) > 0 {
			diffs = append(diffs, Difference{Kind: Changed, Key: tok, KeyValues: l.keyValues(w), Columns: cols})
		}
	}
	rows = len(want)
	for _, rs := range byKey {
		for _, r := range rs {
			diffs = append(diffs, Difference{Kind: Extra, Key: l.token(r), KeyValues: l.keyValues(r)})
			rows++
		}
	}
	slices.SortFunc(diffs, func(a, b Difference) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), strings.Compare(a.Key, b.Key))
	})
	return diffs, rows
}

// changed lists the columns in which a database row differs from the
// snapshot's: the layout's columns and the snapshot row's.
func (l *Layout) changed(want, got event.Row, typeOf func(string, event.Value) event.ColumnType) []ColumnDiff {
	cols := map[string]bool{}
	for _, c := range l.Columns {
		cols[c.Key] = true
	}
	for k := range want {
		cols[k] = true
	}
	delete(cols, l.TokenColumn)
	var out []ColumnDiff
	for _, c := range slices.Sorted(maps.Keys(cols)) {
		w, g := want[c], got[c]
		if !SameValue(typeOf(c, w), w, g, l.ExactNumbers) {
			out = append(out, ColumnDiff{Column: c, Database: g, Snapshot: w})
		}
	}
	return out
}

// keyValues returns a row's key columns; nil for a content-keyed report.
func (l *Layout) keyValues(row event.Row) event.Row {
	if l.ContentKeyed() {
		return nil
	}
	out := make(event.Row, len(l.Key))
	for _, k := range l.Key {
		out[k] = row[k]
	}
	return out
}

// token renders a database row's key as a row key token.
func (l *Layout) token(row event.Row) string {
	if l.ContentKeyed() {
		return row[l.TokenColumn].Raw
	}
	texts := make([]string, len(l.Key))
	for i, k := range l.Key {
		texts[i] = row[k].Raw
	}
	return event.JoinToken(texts...)
}

// matchText renders a key value for matching: numbers by value, so 1.50
// and 1.5 (and a number SQLite rounded) match; text as it is.
func matchText(t event.ColumnType, v event.Value) string {
	switch {
	case v.IsNull():
		return "\x01"
	case t.Numeric() && event.ValidNumber(v.Raw):
		return "n" + numberKey(v.Raw)
	}
	return "t" + v.Raw
}

// numberKey renders a number literal by value: an integer exactly, any
// other number to 15 significant digits.
func numberKey(lit string) string {
	if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
		return strconv.FormatInt(n, 10)
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return lit // out of range: only the same literal matches
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<62 {
		return strconv.FormatInt(int64(f), 10) // 1.0, 1e3
	}
	return strconv.FormatFloat(f, 'g', 15, 64)
}

// SameValue reports whether a database value equals the snapshot's for a
// column of type t: null only equals null; numbers compare by value
// (exactly if exact, else to about 12 significant digits, which SQLite's
// 15 survive); text compares exactly.
func SameValue(t event.ColumnType, want, got event.Value, exact bool) bool {
	if want.IsNull() || got.IsNull() {
		return want.IsNull() && got.IsNull()
	}
	if !t.Numeric() || !event.ValidNumber(want.Raw) || !event.ValidNumber(got.Raw) {
		return want.Raw == got.Raw
	}
	if want.Raw == got.Raw {
		return true
	}
	if exact {
		return exactEqual(want.Raw, got.Raw)
	}
	w, werr := strconv.ParseFloat(want.Raw, 64)
	g, gerr := strconv.ParseFloat(got.Raw, 64)
	if werr != nil || gerr != nil {
		return false // out of range, and not the same literal
	}
	return math.Abs(w-g) <= 1e-12*math.Max(1, math.Abs(w))
}

// maxExponent bounds the exponents exactEqual computes with: a literal
// such as 1e999999999 would take big.Rat minutes.
const maxExponent = 10000

// exactEqual compares two valid JSON number literals exactly by value.
func exactEqual(a, b string) bool {
	if exponent(a) > maxExponent || exponent(b) > maxExponent {
		return false // not the same literal: treated as different
	}
	x, okx := new(big.Rat).SetString(a)
	y, oky := new(big.Rat).SetString(b)
	return okx && oky && x.Cmp(y) == 0
}

// exponent returns the magnitude of a number literal's exponent.
func exponent(lit string) int {
	i := strings.IndexAny(lit, "eE")
	if i < 0 {
		return 0
	}
	e, err := strconv.Atoi(strings.TrimPrefix(lit[i+1:], "+"))
	if err != nil {
		return math.MaxInt
	}
	return max(e, -e)
}
