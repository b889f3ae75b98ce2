package simulator

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/cometstream/cometstream/event"
)

// contentKeyed reports whether the report's rows are identified by their
// content (key ["*"]), so that no key can repeat.
func (r *report) contentKeyed() bool {
	return len(r.gen.key) == 1 && r.gen.key[0] == event.ContentKey
}

// keyIndexes returns the positions of the key columns among the columns.
func (r *report) keyIndexes() []int {
	if r.contentKeyed() {
		return nil
	}
	out := make([]int, 0, len(r.gen.key))
	for _, k := range r.gen.key {
		out = append(out, slices.IndexFunc(r.columns, func(c event.Column) bool { return c.Key == k }))
	}
	return out
}

// keyText is a row's key as RepeatedKeys reports it: the key columns'
// contract values joined with "/".
func (r *report) keyText(keys []int, x row) string {
	parts := make([]string, len(keys))
	for i, j := range keys {
		parts[i] = contractValue(r.columns[j].Type, x[j]).Raw
	}
	return strings.Join(parts, "/")
}

// sameKey reports whether two rows have the same key cells.
func sameKey(keys []int, a, b row) bool {
	for _, j := range keys {
		if a[j] != b[j] {
			return false
		}
	}
	return len(keys) > 0
}

// RepeatedKeys returns the keys that occur on more than one row of a report
// now, as text (the key columns' values joined with "/", e.g. "100042" or
// "9001/17"), in the order of their first row. It returns nil for an unknown
// report and for a report keyed by content.
func (s *Simulator) RepeatedKeys(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.reports[name]
	if !ok {
		return nil
	}
	return r.repeated()
}

// repeated returns the repeated keys in the order of their first row.
func (r *report) repeated() []string {
	keys := r.keyIndexes()
	if keys == nil {
		return nil
	}
	seen := make(map[string]int, len(r.rows))
	var out []string
	for _, x := range r.rows {
		k := r.keyText(keys, x)
		seen[k]++
		if seen[k] == 2 {
			out = append(out, k)
		}
	}
	return out
}

// repeatKeys adds or removes twin rows until want keys repeat (or the rows
// run out).
func (r *report) repeatKeys(rng *rand.Rand, want int) {
	keys := r.keyIndexes()
	have := r.repeated()
	if len(have) > want {
		drop := make(map[string]bool)
		for _, k := range have[want:] {
			drop[k] = true
		}
		first := make(map[string]bool)
		r.rows = slices.DeleteFunc(r.rows, func(x row) bool {
			k := r.keyText(keys, x)
			if !drop[k] {
				return false
			}
			if !first[k] {
				first[k] = true
				return false
			}
			return true
		})
		return
	}
	count := make(map[string]int, len(r.rows))
	for _, x := range r.rows {
		count[r.keyText(keys, x)]++
	}
	var unique []int
	for i, x := range r.rows {
		if count[r.keyText(keys, x)] == 1 {
			unique = append(unique, i)
		}
	}
	picked := pickDistinct(rng, unique, want-len(have))
	// From the bottom up, so that the positions still to come stay valid.
	slices.Sort(picked)
	for _, i := range slices.Backward(picked) {
		r.rows = slices.Insert(r.rows, i+1, r.twin(rng, r.rows[i]))
	}
}

// twin returns a copy of x with the same key and other content.
func (r *report) twin(rng *rand.Rand, x row) row {
	y := slices.Clone(x)
	before := fmt.Sprint(y)
	for tries := 0; tries < 100 && fmt.Sprint(y) == before; tries++ {
		r.gen.change(rng, y)
	}
	return y
}

// pickDistinct returns n elements of from (all when it has fewer), chosen at
// random. It reorders from.
func pickDistinct(rng *rand.Rand, from []int, n int) []int {
	n = min(n, len(from))
	for k := range n {
		j := k + rng.IntN(len(from)-k)
		from[k], from[j] = from[j], from[k]
	}
	return slices.Clone(from[:n])
}
