package producer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
)

// A key that occurs on several rows of one report (a person with two
// registrations in a report keyed by personId) is settled once per pass,
// after its last row has arrived, to the row that sorts last by canonical
// JSON: the choice depends on the rows' contents, never on the order COMET
// serves them in, so an unchanged report publishes nothing however its
// repeated rows move.
//
// A pass cannot know a key repeats until its second row arrives, by when the
// first was diffed like any row: the pass that reveals a repeated key may
// publish one update for it. The keys seen repeated are remembered (in the
// state bucket, under RepeatedKeysKey) until they are deleted, or three
// passes in a row have seen them on one row with no row seen twice (one
// such pass may have missed a row), so later passes hold all their rows
// back until the pass ends and publish only real changes. A key revealed
// in a pass that published its first row as it arrived is settled by the
// next pass, which follows at once: a key gets one update a pass at most.
//
// Even a pass that fetched every page with totalSize unchanged can miss one
// of a key's rows: the row moved into a page already fetched, and another
// row was seen twice in its place (COMET ordering rows that tie on its sort
// column differently from one request to the next). Moving rows adds no
// content, so a pass that saw as many different rows of a key as the pass
// that last settled it, the standing row among them (or a row that sorts
// above it), saw the key's rows or real changes to them, and settles it at
// once. One that saw fewer or more (a row missed, a row seen twice, a row
// added or removed for real) settles it only when the pass before saw the
// same rows of it, as many times each, and is followed at once by a pass
// that can agree. Two passes that misread a key in exactly the same way
// still agree: a wrong standing row needs two identical misreadings in a
// row, not one. The count is recorded with the key, so a restart or a
// recovery keeps it.

// candidate is what a pass has seen of a key that repeats: how many rows,
// and the one that stands for the key so far.
type candidate struct {
	rows int
	best []byte // canonical JSON
	vals []event.Value
	hash event.Hash
	// seen are the different rows seen, by hash, and times how many times;
	// index finds a hash in seen once there are many (a poor key).
	seen  []event.Hash
	times []int
	index map[event.Hash]int
	// inline: the key's first row was diffed as it arrived (the key was not
	// known to repeat), so the snapshot holds it, or soon will.
	inline bool
}

// keyRows is what passes saw of a repeated key's rows: how many different
// rows the pass that last settled it saw, and which ones the last pass saw.
type keyRows struct {
	settled int
	last    rowSet
	// single counts the passes in a row that saw the key on one row.
	single int
}

// forgetAfter is how many passes in a row must see a repeated key on one
// row before it is no longer held back: one pass alone may have missed
// its other rows.
const forgetAfter = 3

// rowsSeen is what a pass saw of the key: each row, as many times as seen.
func (c *candidate) rowsSeen() rowSet {
	var s rowSet
	for i, h := range c.seen {
		for k := range c.times[i] {
			s.add(h, k+1)
		}
	}
	s.ok = true
	return s
}

// see counts one row of the key: a scan of the few rows a key usually
// has, a map once it has many, so a key shared by every row costs a pass
// linear, not quadratic, time.
func (c *candidate) see(h event.Hash) {
	i, ok := -1, false
	if c.index != nil {
		i, ok = c.index[h]
	} else {
		i = slices.Index(c.seen, h)
		ok = i >= 0
	}
	if ok {
		c.times[i]++
		return
	}
	c.seen, c.times = append(c.seen, h), append(c.times, 1)
	switch {
	case c.index != nil:
		c.index[h] = len(c.seen) - 1
	case len(c.seen) > seenScan:
		c.index = make(map[event.Hash]int, 2*len(c.seen))
		for j, s := range c.seen {
			c.index[s] = j
		}
	}
}

// seenScan is how many different rows of a key see scans before it
// keeps a map of them.
const seenScan = 16

// isRepeated reports whether a key is known to repeat.
func (r *reporter) isRepeated(idx int32) bool {
	if len(r.repeated) == 0 {
		return false
	}
	_, ok := r.repeated[idx]
	return ok
}

// candidate takes one row of a key held back until the pass ends.
func (ps *pass) candidate(idx int32, vals []event.Value, canonical []byte, h event.Hash, inline bool) {
	if ps.candidates == nil {
		ps.candidates = map[int32]*candidate{}
	}
	c := ps.candidates[idx]
	if c == nil {
		c = &candidate{inline: inline}
		if inline {
			// The key's first row, diffed as it arrived, is what the
			// snapshot holds now.
			c.see(ps.r.snap.entries[idx].hash)
		}
		ps.candidates[idx] = c
	}
	c.rows++
	c.see(h)
	if c.best == nil || bytes.Compare(canonical, c.best) > 0 {
		// Copied: the page that holds them is not kept.
		c.best, c.hash = slices.Clone(canonical), h
		c.vals = make([]event.Value, len(vals))
		for i, v := range vals {
			c.vals[i] = event.Value{Kind: v.Kind, Raw: strings.Clone(v.Raw)}
		}
	}
}

// settle publishes what the held-back keys come to, when every row of the
// pass arrived with totalSize unchanged (complete) and the pass can be
// trusted with the key; otherwise it only remembers the keys newly seen
// repeated, for the next pass. It returns how many keys with a change wait
// for a pass that agrees.
func (ps *pass) settle(ctx context.Context, complete bool) (int, error) {
	r := ps.r
	if !complete {
		for idx, c := range ps.candidates {
			if c.rows > 1 || c.inline {
				r.markRepeated(idx, true)
			}
			r.keyRows[idx] = keyRows{settled: r.keyRows[idx].settled}
		}
		return 0, nil
	}
	if len(ps.candidates) > 0 {
		// The first rows of keys revealed this pass must be in the snapshot
		// before they are compared.
		if err := ps.pub.flush(ctx); err != nil {
			return 0, err
		}
	}
	waiting := 0
	// A row seen twice with its key and content is a row that moved into
	// a page already fetched, unless the report holds it twice: then some
	// row may have been missed in its place.
	moved := false
	for _, c := range ps.candidates {
		moved = moved || slices.ContainsFunc(c.times, func(n int) bool { return n > 1 })
	}
	order := make([]int32, 0, len(ps.candidates))
	for idx := range ps.candidates {
		order = append(order, idx)
	}
	slices.SortFunc(order, func(a, b int32) int { return strings.Compare(r.snap.token(a), r.snap.token(b)) })
	for _, idx := range order {
		c := ps.candidates[idx]
		e := &r.snap.entries[idx]
		if c.inline && e.live {
			cur, err := r.snap.get(ctx, r.snap.token(idx))
			if err != nil {
				return 0, err
			}
			if bytes.Compare(cur, c.best) >= 0 {
				c.best, c.hash = nil, e.hash // the first row stands
			}
		}
		if c.rows > 1 || c.inline {
			r.markRepeated(idx, true)
		}
		seen, known := c.rowsSeen(), r.keyRows[idx]
		single := 0
		if c.rows == 1 && !c.inline && !moved {
			single = known.single + 1
		}
		changed := c.best != nil && !(e.live && e.hash == c.hash)
		if changed && c.inline && e.published == ps.n && !e.created {
			// The key's first row was published this pass, as it arrived,
			// as an update: one update a pass is all a key may have, so the
			// rows it comes to are settled by the next, which follows at
			// once. (A key the pass created may get its one update.)
			r.keyRows[idx] = keyRows{settled: known.settled, last: seen}
			waiting++
			continue
		}
		// A key revealed this pass has no history to hold it to.
		trusted := c.inline || seen.same(known.last)
		if !trusted && known.settled > 0 && len(c.seen) == known.settled {
			// As many different rows as the pass that last settled it: all
			// of them, or real changes, unless a real row came in a pass
			// that missed one, which only a pass that saw a row twice can
			// have done. Then the standing row seen, or a row above it,
			// rules it out.
			trusted = true
			if moved {
				var err error
				if trusted, err = ps.standingHolds(ctx, idx, c); err != nil {
					return 0, err
				}
			}
		}
		if !trusted {
			r.keyRows[idx] = keyRows{settled: known.settled, last: seen, single: single}
			if changed {
				waiting++
			}
			continue
		}
		if known.settled != len(c.seen) {
			r.repeatedDirty = true // the count is recorded with the key
		}
		r.keyRows[idx] = keyRows{settled: len(c.seen), last: seen, single: single}
		if single >= forgetAfter {
			r.markRepeated(idx, false)
			delete(r.keyRows, idx)
		}
		if !changed {
			continue
		}
		if err := ps.publishRow(ctx, idx, c.vals, c.best, c.hash); err != nil {
			return 0, err
		}
	}
	// Keys once repeated and deleted since.
	for idx := range r.repeated {
		if !r.snap.entries[idx].live {
			r.markRepeated(idx, false)
			delete(r.keyRows, idx)
		}
	}
	return waiting, nil
}

// standingHolds reports whether a pass that saw as many different rows of
// a key as the pass that last settled it saw the key's standing row, or a
// row that sorts above it (which no move between pages can invent).
func (ps *pass) standingHolds(ctx context.Context, idx int32, c *candidate) (bool, error) {
	r := ps.r
	e := &r.snap.entries[idx]
	if !e.live || slices.Contains(c.seen, e.hash) {
		return true, nil
	}
	cur, err := r.snap.get(ctx, r.snap.token(idx))
	if err != nil {
		return false, err
	}
	return c.best != nil && bytes.Compare(c.best, cur) > 0, nil
}

func (r *reporter) markRepeated(idx int32, on bool) {
	if _, was := r.repeated[idx]; was == on {
		return
	}
	if on {
		r.repeated[idx] = struct{}{}
	} else {
		delete(r.repeated, idx)
	}
	r.repeatedDirty = true
}

// maxRepeatedBytes bounds the recorded set of repeated keys; past it, the
// rest are learnt again after a restart.
const maxRepeatedBytes = 512 << 10

// saveRepeated records the keys seen repeated when they changed.
func (r *reporter) saveRepeated(ctx context.Context) error {
	if !r.repeatedDirty {
		return nil
	}
	key := event.RepeatedKeysKey(r.cfg.Name)
	tokens := make([]string, 0, len(r.repeated))
	settled := make(map[string]int, len(r.repeated))
	for idx := range r.repeated {
		t := r.snap.token(idx)
		tokens = append(tokens, t)
		settled[t] = r.keyRows[idx].settled
	}
	slices.Sort(tokens)
	if len(tokens) == 0 {
		if err := r.p.state.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return err
		}
		r.repeatedDirty = false
		return nil
	}
	size, n := 2, 0
	for n < len(tokens) && size+len(tokens[n])+8 <= maxRepeatedBytes {
		size += len(tokens[n]) + 8
		n++
	}
	if n < len(tokens) {
		r.log.Warn("more keys repeat than can be recorded: after a restart the rest are learnt again (is key the right choice? see `cometstream inspect`)",
			"repeated_keys", len(tokens), "recorded", n, "key_columns", r.cfg.Key)
	}
	record := make(map[string]int, n)
	for _, t := range tokens[:n] {
		record[t] = settled[t]
	}
	b, err := json.Marshal(record) // keys sorted
	if err != nil {
		return err
	}
	if _, err := r.p.state.Put(ctx, key, b); err != nil {
		return fmt.Errorf("record repeated keys of %s: %w", r.cfg.Name, err)
	}
	r.repeatedDirty = false
	return nil
}

// loadRepeated reads the keys seen repeated into the index.
func (r *reporter) loadRepeated(ctx context.Context) error {
	r.repeated, r.repeatedDirty, r.keyRows = map[int32]struct{}{}, false, map[int32]keyRows{}
	e, err := r.p.state.Get(ctx, event.RepeatedKeysKey(r.cfg.Name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read repeated keys of %s: %w", r.cfg.Name, err)
	}
	// An object of each token's different rows when last settled; an
	// array of tokens, as earlier versions wrote, knows no counts.
	record := map[string]int{}
	if err := json.Unmarshal(e.Value(), &record); err != nil {
		var tokens []string
		if err := json.Unmarshal(e.Value(), &tokens); err != nil {
			r.log.Warn("the recorded repeated keys are unreadable: learning them again", "err", err)
			return nil
		}
		for _, t := range tokens {
			record[t] = 0
		}
	}
	for t, n := range record {
		if idx, ok := r.snap.find(t); ok {
			r.repeated[idx] = struct{}{}
			if n > 0 {
				r.keyRows[idx] = keyRows{settled: n}
			}
		}
	}
	return nil
}
