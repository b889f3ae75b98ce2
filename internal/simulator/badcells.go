package simulator

import (
	"math/rand/v2"
	"slices"

	"github.com/cometstream/cometstream/event"
)

// badLiterals are the JSON cells sent instead of a value by the BadCells
// shape, by column type: what deployments in the wild were seen sending.
var badLiterals = map[event.ColumnType][]string{
	event.TypeNumber:   {`true`, `"1.234,50"`, `"n/a"`},
	event.TypeAmount:   {`"1.234,50"`, `false`, `"12,50 €"`},
	event.TypeDate:     {`"31.12.2020"`, `true`, `"2020-13-45"`},
	event.TypeDateTime: {`"31.12.2020 14:30"`, `false`, `"yesterday"`},
}

// badLiteral returns the literal a bad cell of type t is sent as.
func badLiteral(t event.ColumnType, c cell) string {
	lits := badLiterals[t]
	return lits[int(c.bad-1)%len(lits)]
}

// badColumns returns the positions of the columns a bad cell may go into:
// typed columns that are not part of the key.
func (r *report) badColumns() []int {
	keys := r.keyIndexes()
	var out []int
	for j, c := range r.columns {
		if _, ok := badLiterals[c.Type]; ok && !slices.Contains(keys, j) {
			out = append(out, j)
		}
	}
	return out
}

// poisonCells poisons or restores cells until want rows carry a bad cell
// (or the rows run out).
func (r *report) poisonCells(rng *rand.Rand, want int) {
	var bad, clean []int
	for i, x := range r.rows {
		switch {
		case slices.ContainsFunc(x, func(c cell) bool { return c.bad != 0 }):
			bad = append(bad, i)
		case !slices.ContainsFunc(x, func(c cell) bool { return c.raw }):
			// A row Poison wrote raw JSON into is left to Poison.
			clean = append(clean, i)
		}
	}
	if len(bad) > want {
		for _, i := range bad[want:] {
			x := slices.Clone(r.rows[i])
			for j := range x {
				x[j].bad = 0
			}
			r.rows[i] = x
		}
		return
	}
	cols := r.badColumns()
	for _, i := range pickDistinct(rng, clean, want-len(bad)) {
		x := slices.Clone(r.rows[i])
		j := cols[rng.IntN(len(cols))]
		x[j].bad = uint8(1 + rng.IntN(len(badLiterals[r.columns[j].Type])))
		r.rows[i] = x
	}
}
