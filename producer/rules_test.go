package producer

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/comet"
)

// TestConsistentPredicate: a pass is consistent only when every condition of
// its definition holds; each row takes away exactly one.
func TestConsistentPredicate(t *testing.T) {
	good := comet.Summary{Complete: true, TotalSizeStable: true, RowCountsMatch: true, TotalSize: 10}
	for _, tc := range []struct {
		name                       string
		sum                        comet.Summary
		err                        error
		keyed, duplicates, invalid int
		want                       bool
	}{
		{"everything holds", good, nil, 10, 0, 0, true},
		{"empty report", comet.Summary{Complete: true, TotalSizeStable: true, RowCountsMatch: true}, nil, 0, 0, 0, true},
		{"a page failed", good, errors.New("HTTP 500"), 10, 0, 0, false},
		{"not every page fetched", func() comet.Summary { s := good; s.Complete = false; return s }(), nil, 10, 0, 0, false},
		{"totalSize moved between pages", func() comet.Summary { s := good; s.TotalSizeStable = false; return s }(), nil, 10, 0, 0, false},
		{"a page short of rows", func() comet.Summary { s := good; s.RowCountsMatch = false; return s }(), nil, 10, 0, 0, false},
		{"fewer keys than totalSize", good, nil, 9, 0, 0, false},
		{"more keys than totalSize", good, nil, 11, 0, 0, false},
		{"a repeated key", good, nil, 10, 1, 0, false},
		{"an invalid row", good, nil, 10, 0, 1, false},
	} {
		if got := consistent(tc.sum, tc.err, tc.keyed, tc.duplicates, tc.invalid); got != tc.want {
			t.Errorf("%s: consistent = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestChangedColumns(t *testing.T) {
	s, err := event.NewSchema([]event.Column{
		{Key: "id", Name: "Id", Type: event.TypeNumber},
		{Key: "name", Name: "Name", Type: event.TypeString},
		{Key: "amount", Name: "Amount", Type: event.TypeAmount},
	})
	if err != nil {
		t.Fatal(err)
	}
	n, txt, null := event.NumberValue, event.TextValue, event.NullValue()
	for _, tc := range []struct {
		name   string
		before string
		vals   []event.Value
		want   []string
	}{
		{"nothing changed", `{"amount":1042.70,"id":1,"name":"A"}`, []event.Value{n("1"), txt("A"), n("1042.70")}, nil},
		{"one column", `{"amount":1042.70,"id":1,"name":"A"}`, []event.Value{n("1"), txt("B"), n("1042.70")}, []string{"name"}},
		{"in column order", `{"amount":1,"id":1,"name":"A"}`, []event.Value{n("1"), txt("B"), n("2")}, []string{"name", "amount"}},
		{"digits are the value: 1042.7 is not 1042.70", `{"amount":1042.70,"id":1,"name":"A"}`, []event.Value{n("1"), txt("A"), n("1042.7")}, []string{"amount"}},
		{"to null", `{"amount":5,"id":1,"name":"A"}`, []event.Value{n("1"), txt("A"), null}, []string{"amount"}},
		{"from null", `{"amount":null,"id":1,"name":"A"}`, []event.Value{n("1"), txt("A"), n("5")}, []string{"amount"}},
		{"number 1 is not text \"1\"", `{"amount":5,"id":1,"name":1}`, []event.Value{n("1"), txt("1"), n("5")}, []string{"name"}},
		{"a new column", `{"id":1,"name":"A"}`, []event.Value{n("1"), txt("A"), null}, []string{"amount"}},
		{"columns gone come last, sorted", `{"amount":5,"id":1,"name":"A","zeta":1,"alpha":2}`, []event.Value{n("1"), txt("A"), n("5")}, []string{"alpha", "zeta"}},
		{"an unreadable stored row changes everything", `{"id":`, []event.Value{n("1"), txt("A"), n("5")}, []string{"id", "name", "amount"}},
	} {
		got := changedColumns(s, []byte(tc.before), tc.vals)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: changedColumns = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestKeyFromRow: the key of a deleted event comes from the stored row,
// members sorted, a key column the row lacks null; a content-keyed row is
// its own key.
func TestKeyFromRow(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []string
		row  string
		want string
	}{
		{"one column", []string{"personId"}, `{"name":"A","personId":100004}`, `{"personId":100004}`},
		{"composite, sorted", []string{"matchId", "eventId"}, `{"eventId":"7","matchId":3,"minute":12}`, `{"eventId":"7","matchId":3}`},
		{"digits kept", []string{"id"}, `{"id":90071992547409931}`, `{"id":90071992547409931}`},
		{"a missing key column is null", []string{"id", "season"}, `{"id":1}`, `{"id":1,"season":null}`},
		{"text escaped again", []string{"code"}, `{"code":"a\"b"}`, `{"code":"a\"b"}`},
		{"content key: the row", []string{event.ContentKey}, `{"a":1,"b":"x"}`, `{"a":1,"b":"x"}`},
		{"unreadable row", []string{"id"}, `{"id":`, `{}`},
	} {
		if got := string(keyFromRow(tc.key, []byte(tc.row))); got != tc.want {
			t.Errorf("%s: keyFromRow = %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestCandidateCountsEveryRow: a key's rows are counted by content, each
// as many times as seen, whether it has a few rows or thousands.
func TestCandidateCountsEveryRow(t *testing.T) {
	for _, n := range []int{3, seenScan, seenScan + 1, 5000} {
		c := &candidate{}
		for round := range 3 {
			for i := range n {
				if round < 2 || i%2 == 0 {
					c.see(hashOf(i))
				}
			}
		}
		if len(c.seen) != n {
			t.Fatalf("%d rows: %d different seen", n, len(c.seen))
		}
		for i, h := range c.seen {
			j := int(binary.BigEndian.Uint32(h[:]))
			if want := 2 + map[bool]int{true: 1}[j%2 == 0]; c.times[i] != want {
				t.Fatalf("%d rows: row %d seen %d times, want %d", n, j, c.times[i], want)
			}
		}
	}
}

func hashOf(i int) event.Hash {
	var h event.Hash
	binary.BigEndian.PutUint32(h[:], uint32(i))
	return h
}
