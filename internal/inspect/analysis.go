package inspect

import (
	"slices"
	"strings"
	"unicode"

	"github.com/cometstream/cometstream/event"
)

// Column is what the rows say about one column.
type Column struct {
	event.Column
	Nulls, Distinct int
	// Unique: no null and no value twice.
	Unique bool
}

// Candidate is a key that fits every row analysed: one or two columns,
// unique and never null.
type Candidate struct {
	Columns []string
	// Score ranks candidates: higher is a better key.
	Score int
}

// Repeat describes a key, configured or almost unique, that occurs on
// several rows.
type Repeat struct {
	Columns []string
	// Values is how many key values occur on more than one row, Rows how
	// many rows they cover.
	Values, Rows int
	// Example is one such value (the key's columns' texts joined by "/"),
	// and ExampleRows the rows that carry it, as canonical JSON.
	Example     string
	ExampleRows []string
}

// Analysis is the outcome of Analyze.
type Analysis struct {
	Rows    int
	Columns []Column
	// Candidates, best first; empty when only the content key fits.
	Candidates []Candidate
	// Configured is the check of the configured key, when there is one.
	Configured *Repeat
	// NearlyUnique lists identifier-like columns that are unique but for a
	// few repeated values: often the sign of a person with two
	// registrations, or a facility listed twice.
	NearlyUnique []Repeat
}

// Suggested returns the key to configure: the best candidate, or ["*"].
func (a *Analysis) Suggested() []string {
	if len(a.Candidates) == 0 {
		return []string{event.ContentKey}
	}
	return a.Candidates[0].Columns
}

// maxCandidates bounds the candidates kept.
const maxCandidates = 8

// Analyze looks at rows (aligned with cols) and the configured key (nil
// when none is configured yet, or ["*"]).
func Analyze(cols []event.Column, rows [][]event.Value, configured []string) *Analysis {
	a := &Analysis{Rows: len(rows), Columns: make([]Column, len(cols))}
	for i, c := range cols {
		a.Columns[i] = columnStats(c, i, rows)
	}
	if len(rows) > 0 {
		for _, c := range a.Columns {
			if c.Unique {
				a.Candidates = append(a.Candidates, Candidate{Columns: []string{c.Key}, Score: rank(c.Column) + singleBonus})
			}
		}
		for i := range cols {
			for j := i + 1; j < len(cols); j++ {
				if a.Columns[i].Unique || a.Columns[j].Unique || a.Columns[i].Nulls > 0 || a.Columns[j].Nulls > 0 {
					continue // a unique column alone is the better key
				}
				if uniqueOver(rows, []int{i, j}) {
					a.Candidates = append(a.Candidates, Candidate{Columns: []string{cols[i].Key, cols[j].Key}, Score: min(rank(cols[i]), rank(cols[j]))})
				}
			}
		}
		slices.SortStableFunc(a.Candidates, func(x, y Candidate) int { return y.Score - x.Score })
		// A pair that ranks below a single column is noise.
		if i := slices.IndexFunc(a.Candidates, func(c Candidate) bool { return len(c.Columns) == 1 }); i >= 0 {
			best := a.Candidates[i].Score
			a.Candidates = slices.DeleteFunc(a.Candidates, func(c Candidate) bool { return len(c.Columns) == 2 && c.Score < best })
		}
		if len(a.Candidates) > maxCandidates {
			a.Candidates = a.Candidates[:maxCandidates]
		}
		for i, c := range a.Columns {
			if !c.Unique && c.Nulls == 0 && looksLikeID(c.Key) && c.Distinct*10 >= len(rows)*9 {
				a.NearlyUnique = append(a.NearlyUnique, repeats(cols, rows, []int{i}))
			}
		}
	}
	if len(configured) > 0 && !(len(configured) == 1 && configured[0] == event.ContentKey) {
		var idx []int
		for _, k := range configured {
			if i := slices.IndexFunc(cols, func(c event.Column) bool { return c.Key == k }); i >= 0 {
				idx = append(idx, i)
			}
		}
		if len(idx) == len(configured) {
			r := repeats(cols, rows, idx)
			a.Configured = &r
		}
	}
	return a
}

// singleBonus prefers one column to two of the same rank.
const singleBonus = 5

func columnStats(c event.Column, i int, rows [][]event.Value) Column {
	out := Column{Column: c}
	seen := make(map[event.Value]struct{}, len(rows))
	dup := false
	for _, r := range rows {
		v := r[i]
		if v.IsNull() {
			out.Nulls++
			continue
		}
		if _, ok := seen[v]; ok {
			dup = true
			continue
		}
		seen[v] = struct{}{}
	}
	out.Distinct = len(seen)
	out.Unique = len(rows) > 0 && out.Nulls == 0 && !dup
	return out
}

// uniqueOver reports whether the columns at idx together are unique and
// never null over rows. It stops at the first repeat.
func uniqueOver(rows [][]event.Value, idx []int) bool {
	seen := make(map[string]struct{}, len(rows))
	var b strings.Builder
	for _, r := range rows {
		b.Reset()
		for _, i := range idx {
			if r[i].IsNull() {
				return false
			}
			b.WriteString(r[i].Raw)
			b.WriteByte(0)
		}
		k := b.String()
		if _, ok := seen[k]; ok {
			return false
		}
		seen[k] = struct{}{}
	}
	return true
}

// repeats counts the values of the columns at idx that occur on more than
// one row, with the first as an example.
func repeats(cols []event.Column, rows [][]event.Value, idx []int) Repeat {
	r := Repeat{}
	for _, i := range idx {
		r.Columns = append(r.Columns, cols[i].Key)
	}
	s, _ := event.NewSchema(cols)
	groups := map[string][]int{}
	var order []string
	for n, row := range rows {
		parts := make([]string, len(idx))
		for j, i := range idx {
			parts[j] = row[i].Raw
		}
		k := strings.Join(parts, "/")
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], n)
	}
	for _, k := range order {
		g := groups[k]
		if len(g) < 2 {
			continue
		}
		r.Values++
		r.Rows += len(g)
		if r.Example == "" {
			r.Example = k
			for _, n := range g[:min(len(g), 3)] {
				if s != nil {
					r.ExampleRows = append(r.ExampleRows, string(s.AppendRow(nil, rows[n])))
				}
			}
		}
	}
	return r
}

// rank scores a column as a key: identifiers first, then numbers and
// text; timestamps, amounts and links last, since they are unique by
// coincidence when they are.
func rank(c event.Column) int {
	score := 0
	if looksLikeID(c.Key) {
		score += 10
	}
	switch c.Type {
	case event.TypeNumber:
		score += 3
	case event.TypeString:
		score += 2
	case event.TypeDate, event.TypeDateTime:
		score -= 10
	case event.TypeAmount, event.TypeImageLink:
		score -= 5
	}
	return score
}

// looksLikeID reports whether a column key names an identifier: personId,
// person_id, ID, feeRef, clubCode, matchNo, registrationNumber, uid.
func looksLikeID(key string) bool {
	words := splitWords(key)
	if len(words) == 0 {
		return false
	}
	switch words[len(words)-1] {
	case "id", "ids", "uid", "uuid", "ref", "reference", "code", "no", "nr", "number", "num", "key", "fifa":
		return true
	}
	return false
}

// splitWords splits camelCase, snake_case and kebab-case into lower-case words.
func splitWords(s string) []string {
	var words []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			words = append(words, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	runes := []rune(s)
	for i, r := range runes {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
		case unicode.IsUpper(r) && i > 0 && (unicode.IsLower(runes[i-1]) || (i+1 < len(runes) && unicode.IsLower(runes[i+1]) && unicode.IsUpper(runes[i-1]))):
			flush()
			cur = append(cur, r)
		default:
			cur = append(cur, r)
		}
	}
	flush()
	return words
}
