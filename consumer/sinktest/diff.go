package sinktest

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/cometstream/cometstream/event"
)

// canonicalRows renders rows as sorted strings, for comparing databases.
func canonicalRows(rows []map[string]any) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		var b strings.Builder
		for _, k := range slices.Sorted(maps.Keys(r)) {
			fmt.Fprintf(&b, "%s=%v;", k, text(r[k]))
		}
		out[i] = b.String()
	}
	slices.Sort(out)
	return out
}

func text(v any) string {
	switch x := v.(type) {
	case nil:
		return "<null>"
	case []byte:
		return string(x)
	case float64:
		return strconv.FormatFloat(x, 'g', 15, 64)
	}
	return fmt.Sprint(v)
}

// Diff compares a table's rows with the simulator's, matched by key.
// Numbers compare by value (SQLite keeps 15 significant digits), text
// exactly, null as null.
func Diff(cols []event.Column, key []string, want []event.Row, got []map[string]any) string {
	byKey := map[string]map[string]any{}
	for _, r := range got {
		byKey[keyText(key, func(k string) string { return text(r[k]) })] = r
	}
	var problems []string
	for _, w := range want {
		k := keyText(key, func(k string) string { return w[k].Raw })
		r, ok := byKey[k]
		if !ok {
			problems = append(problems, "missing row "+k)
			continue
		}
		delete(byKey, k)
		for _, c := range cols {
			if !sameValue(c.Type, w[c.Key], r[c.Key]) {
				problems = append(problems, fmt.Sprintf("row %s column %s: got %v, want %v", k, c.Key, text(r[c.Key]), w[c.Key].Raw))
			}
		}
	}
	for k := range byKey {
		problems = append(problems, "extra row "+k)
	}
	return summary(problems)
}

// keyText joins the texts of a row's key columns, which rows are matched
// by.
func keyText(key []string, text func(column string) string) string {
	parts := make([]string, len(key))
	for i, k := range key {
		parts[i] = text(k)
	}
	return strings.Join(parts, "/")
}

// summary joins the first five problems found, and says how many more
// there are.
func summary(problems []string) string {
	if len(problems) > 5 {
		problems = append(problems[:5], fmt.Sprintf("… %d more", len(problems)-5))
	}
	return strings.Join(problems, "; ")
}

func sameValue(typ event.ColumnType, want event.Value, got any) bool {
	if want.IsNull() || got == nil {
		return want.IsNull() && got == nil
	}
	if !typ.Numeric() {
		return want.Raw == text(got)
	}
	w, err := strconv.ParseFloat(want.Raw, 64)
	if err != nil {
		return false
	}
	var g float64
	switch x := got.(type) {
	case int64:
		g = float64(x)
	case float64:
		g = x
	default:
		if g, err = strconv.ParseFloat(text(got), 64); err != nil {
			return false
		}
	}
	return math.Abs(w-g) <= 1e-12*math.Max(1, math.Abs(w))
}

// storeDiff compares rows read back from a store with the report's, as
// multisets matched by key (by content for content-keyed reports).
func storeDiff(cols []event.Column, key []string, want, got []event.Row) string {
	keyOf := func(r event.Row) string {
		if len(key) == 1 && key[0] == event.ContentKey {
			var parts []string
			for _, c := range cols {
				parts = append(parts, c.Key+"="+valueText(c.Type, r[c.Key]))
			}
			return strings.Join(parts, ";")
		}
		return keyText(key, func(k string) string { return valueText(columnType(cols, k), r[k]) })
	}
	byKey := map[string][]event.Row{}
	for _, r := range got {
		byKey[keyOf(r)] = append(byKey[keyOf(r)], r)
	}
	var problems []string
	for _, w := range want {
		k := keyOf(w)
		rs := byKey[k]
		if len(rs) == 0 {
			problems = append(problems, "missing row "+k)
			continue
		}
		if !sameRow(cols, rs[0], w) {
			problems = append(problems, fmt.Sprintf("row %s differs: got %v, want %v", k, rs[0], w))
		}
		byKey[k] = rs[1:]
	}
	var extra []string
	for k, rs := range byKey {
		for range rs {
			extra = append(extra, "extra row "+k)
		}
	}
	sort.Strings(extra)
	return summary(append(problems, extra...))
}

func columnType(cols []event.Column, key string) event.ColumnType {
	for _, c := range cols {
		if c.Key == key {
			return c.Type
		}
	}
	return event.TypeString
}

// valueText renders a value for matching: numbers by value, so a store
// that rounds matches.
func valueText(t event.ColumnType, v event.Value) string {
	if v.IsNull() {
		return "<null>"
	}
	if t.Numeric() {
		return text(numberOf(v.Raw))
	}
	return v.Raw
}

// sameRow compares a row read back with the report's, column by column.
func sameRow(cols []event.Column, got, want event.Row) bool {
	for _, c := range cols {
		g := any(nil)
		if v := got[c.Key]; !v.IsNull() {
			g = v.Raw
		}
		if !sameValue(c.Type, want[c.Key], g) {
			return false
		}
	}
	return true
}

// numberOf parses a number literal for matching by value.
func numberOf(s string) any {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s
	}
	return f
}
