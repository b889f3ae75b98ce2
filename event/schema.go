package event

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"sort"
)

// ColumnType is a COMET column type.
type ColumnType string

// The column types COMET reports use.
const (
	TypeNumber    ColumnType = "NUMBER"
	TypeString    ColumnType = "STRING"
	TypeImageLink ColumnType = "IMAGELINK"
	TypeDate      ColumnType = "DATE"
	TypeDateTime  ColumnType = "DATETIME"
	TypeAmount    ColumnType = "AMOUNT"
)

// Known reports whether t is one of the column types the contract defines.
func (t ColumnType) Known() bool {
	switch t {
	case TypeNumber, TypeString, TypeImageLink, TypeDate, TypeDateTime, TypeAmount:
		return true
	}
	return false
}

// Numeric reports whether values of type t are JSON numbers.
func (t ColumnType) Numeric() bool { return t == TypeNumber || t == TypeAmount }

// Column describes one report column: its stable key, its translated display
// name and its type.
type Column struct {
	Key  string     `json:"key"`
	Name string     `json:"name"`
	Type ColumnType `json:"type"`
}

// Schema is an ordered set of columns with unique keys. Rows handled with a
// schema are slices of values aligned with Columns.
type Schema struct {
	Columns []Column

	index   map[string]int
	sorted  []int    // column positions in byte order of their keys
	keyJSON [][]byte // `"key":` for each column, in Columns order
}

// NewSchema returns a schema over cols. It fails on an empty or duplicate
// column key or an unknown column type.
func NewSchema(cols []Column) (*Schema, error) {
	s := &Schema{
		Columns: slices.Clone(cols),
		index:   make(map[string]int, len(cols)),
		sorted:  make([]int, len(cols)),
		keyJSON: make([][]byte, len(cols)),
	}
	for i, c := range cols {
		if c.Key == "" {
			return nil, fmt.Errorf("column %d has an empty key", i)
		}
		if !c.Type.Known() {
			return nil, fmt.Errorf("column %q has unknown type %q", c.Key, c.Type)
		}
		if _, dup := s.index[c.Key]; dup {
			return nil, fmt.Errorf("column key %q appears twice", c.Key)
		}
		s.index[c.Key] = i
		s.sorted[i] = i
		s.keyJSON[i] = append(AppendString(nil, c.Key), ':')
	}
	sort.Slice(s.sorted, func(a, b int) bool { return cols[s.sorted[a]].Key < cols[s.sorted[b]].Key })
	return s, nil
}

// Index returns the position of the column with the given key, or -1.
func (s *Schema) Index(key string) int {
	if i, ok := s.index[key]; ok {
		return i
	}
	return -1
}

// Equal reports whether two schemas have the same columns (keys, names and
// types) in the same order.
func (s *Schema) Equal(o *Schema) bool {
	if s == nil || o == nil {
		return s == o
	}
	return slices.Equal(s.Columns, o.Columns)
}

// AppendRow appends vals as a JSON object to b, members in byte order of
// their keys, no whitespace. This is the canonical form of a row: the
// event's "after", the KV value, and the input of RowHash.
func (s *Schema) AppendRow(b []byte, vals []Value) []byte {
	b = append(b, '{')
	for n, i := range s.sorted {
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, s.keyJSON[i]...)
		b = vals[i].AppendJSON(b)
	}
	return append(b, '}')
}

// AppendSubset appends the columns at positions cols (in byte order of their
// keys) as a JSON object.
func (s *Schema) AppendSubset(b []byte, vals []Value, cols []int) []byte {
	b = append(b, '{')
	for n, i := range cols {
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, s.keyJSON[i]...)
		b = vals[i].AppendJSON(b)
	}
	return append(b, '}')
}

// Hash is the 128-bit digest by which rows are compared.
type Hash [16]byte

// RowHash returns the first 16 bytes of the SHA-256 of a row's canonical
// JSON (Schema.AppendRow).
func RowHash(canonical []byte) Hash {
	sum := sha256.Sum256(canonical)
	var h Hash
	copy(h[:], sum[:16])
	return h
}
