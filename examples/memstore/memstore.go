package memstore

import (
	"context"
	"fmt"
	"maps"
	"sync"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/event"
)

// Store keeps tables, rows and positions in memory.
type Store struct {
	mu        sync.Mutex
	positions map[string]uint64
	tables    map[string]*consumer.Table
	rows      map[string]map[string]event.Row // report → row identity → row
}

var _ consumer.Store = (*Store)(nil)

var (
	openMu sync.Mutex
	opened = map[string]*Store{}
)

// Open returns the store called name, creating it empty the first time.
func Open(name string) *Store {
	openMu.Lock()
	defer openMu.Unlock()
	if s, ok := opened[name]; ok {
		return s
	}
	s := &Store{positions: map[string]uint64{}, tables: map[string]*consumer.Table{}, rows: map[string]map[string]event.Row{}}
	opened[name] = s
	return s
}

// Positions implements consumer.Store.
func (s *Store) Positions(context.Context) (map[string]uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.positions), nil
}

// Tables implements consumer.Store.
func (s *Store) Tables(context.Context) (map[string]*consumer.Table, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.tables), nil
}

// Apply implements consumer.Store: the batch is applied to copies, which
// replace the store's maps only when every change succeeded, so a batch is
// applied whole or not at all.
func (s *Store) Apply(_ context.Context, b *consumer.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tables, rows := maps.Clone(s.tables), maps.Clone(s.rows)
	touched := map[string]bool{}
	for _, ch := range b.Changes {
		r := ch.Table.Report
		if !touched[r] {
			rows[r] = maps.Clone(rows[r])
			if rows[r] == nil {
				rows[r] = map[string]event.Row{}
			}
			touched[r] = true
		}
		switch ch.Kind {
		case consumer.ChangeTable:
			t := *ch.Table
			if old, ok := tables[r]; ok {
				// Columns only grow, and keep their first type.
				t.Columns = old.Columns
				for _, c := range ch.Table.Columns {
					if _, ok := old.Column(c.Key); !ok {
						t.Columns = append(t.Columns, c)
					}
				}
			}
			tables[r] = &t
		case consumer.ChangeUpsert:
			if tables[r] == nil {
				return fmt.Errorf("memstore: a row of %s before its table", r)
			}
			row := event.Row{}
			for _, c := range tables[r].Columns {
				row[c.Key] = ch.Row[c.Key] // absent: null
			}
			rows[r][identity(ch)] = row
		case consumer.ChangeDelete:
			delete(rows[r], identity(ch))
		}
	}
	s.tables, s.rows = tables, rows
	maps.Copy(s.positions, b.Positions)
	return nil
}

// identity is what identifies a row: the token for a content-keyed table,
// whose identical rows are distinct rows, else the key columns' values.
func identity(ch consumer.Change) string {
	if ch.Table.ContentKeyed() {
		return ch.Token
	}
	parts := make([]string, len(ch.Table.Key))
	for i, k := range ch.Table.Key {
		parts[i] = ch.Row[k].Raw
	}
	return event.JoinToken(parts...)
}

// Reset implements consumer.Store.
func (s *Store) Reset(_ context.Context, report string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.rows, report)
	delete(s.positions, report)
	return nil
}

// Rows returns a report's rows (nil when the store has no table for it).
func (s *Store) Rows(report string) []event.Row {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tables[report]; !ok {
		return nil
	}
	out := make([]event.Row, 0, len(s.rows[report]))
	for _, r := range s.rows[report] {
		out = append(out, maps.Clone(r))
	}
	return out
}
