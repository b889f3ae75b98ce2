package consumer

import (
	"slices"
	"testing"

	"github.com/cometstream/cometstream/event"
)

func TestFilterSubjects(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    Filter
		want []string
	}{
		{"zero filter: everything", Filter{}, []string{"comet.>"}},
		{"one report", Filter{Reports: []string{"persons"}}, []string{"comet.persons.>"}},
		{"two reports", Filter{Reports: []string{"persons", "fees"}}, []string{"comet.persons.>", "comet.fees.>"}},
		{"updates only: no report events", Filter{Ops: []event.Op{event.OpUpdated}}, []string{"comet.*.row.updated.>"}},
		{"report events only", Filter{Kinds: []event.ReportKind{event.KindSynced}}, []string{"comet.*.report.synced"}},
		{"both, sorted", Filter{Reports: []string{"persons"}, Ops: []event.Op{event.OpDeleted, event.OpCreated}, Kinds: []event.ReportKind{event.KindSchema}},
			[]string{"comet.persons.report.schema", "comet.persons.row.created.>", "comet.persons.row.deleted.>"}},
		{"repeats collapse", Filter{Reports: []string{"fees", "fees"}, Ops: []event.Op{event.OpUpdated, event.OpUpdated}}, []string{"comet.fees.row.updated.>"}},
	} {
		got, err := tc.f.Subjects("comet")
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: Subjects = %q, want %q", tc.name, got, tc.want)
		}
	}
	for _, bad := range []Filter{
		{Reports: []string{"Persons"}},
		{Reports: []string{"a.b"}},
		{Reports: []string{">"}},
		{Reports: []string{""}},
		{Ops: []event.Op{"upserted"}},
		{Kinds: []event.ReportKind{"row"}},
	} {
		if got, err := bad.Subjects("comet"); err == nil {
			t.Errorf("Subjects(%+v) = %q, want an error", bad, got)
		}
	}
}

// TestColumnWidening: a table only ever gains columns; a column keeps its
// first type; columns a row brings that the table lacks are typed by value.
func TestColumnWidening(t *testing.T) {
	base := &Table{Report: "persons", Key: []string{"id"}, Columns: []event.Column{
		{Key: "id", Name: "Id", Type: event.TypeNumber},
		{Key: "name", Name: "Name", Type: event.TypeString},
	}}
	keys := func(t *Table) []string {
		var out []string
		for _, c := range t.Columns {
			out = append(out, c.Key+":"+string(c.Type))
		}
		return out
	}

	m := base.merged([]event.Column{
		{Key: "name", Name: "Name", Type: event.TypeNumber}, // retyped: keeps STRING
		{Key: "born", Name: "Born", Type: event.TypeDate},
	})
	if want := []string{"id:NUMBER", "name:STRING", "born:DATE"}; !slices.Equal(keys(m), want) {
		t.Errorf("merged = %q, want %q", keys(m), want)
	}
	if want := []string{"id:NUMBER", "name:STRING"}; !slices.Equal(keys(base), want) {
		t.Errorf("merged changed its receiver: %q", keys(base))
	}
	if m := base.merged(nil); !slices.Equal(keys(m), keys(base)) {
		t.Errorf("merged(nil) = %q", keys(m))
	}

	same, grew := withColumns(base, event.Row{"id": event.NumberValue("1"), "name": event.TextValue("A")})
	if grew || same != base {
		t.Errorf("a row with the table's columns widened it: %q", keys(same))
	}
	wide, grew := withColumns(base, event.Row{"id": event.NumberValue("1"), "zeta": event.NumberValue("2"), "alpha": event.TextValue("x"), "nil": event.NullValue()})
	if want := []string{"id:NUMBER", "name:STRING", "alpha:STRING", "nil:STRING", "zeta:NUMBER"}; !grew || !slices.Equal(keys(wide), want) {
		t.Errorf("withColumns = %q (grew %v), want %q", keys(wide), grew, want)
	}

	row := withNulls(wide, event.Row{"id": event.NumberValue("1")})
	if len(row) != len(wide.Columns) || !row["zeta"].IsNull() || row["id"].Raw != "1" {
		t.Errorf("withNulls = %v", row)
	}
}

// TestPrimaryKey: the primary key of a report's table in a SQL store, and
// the statement that creates the table.
func TestPrimaryKey(t *testing.T) {
	cols := []event.Column{{Key: "personId", Type: event.TypeNumber}, {Key: "season", Type: event.TypeString}}
	col := func(key string) string { return "[" + key + "]" }
	sqlType := func(t event.ColumnType) string {
		if t.Numeric() {
			return "num"
		}
		return "txt"
	}
	for _, tc := range []struct {
		name   string
		key    []string
		want   []KeyColumn
		create string
	}{
		{"one declared column", []string{"personId"}, []KeyColumn{{Name: "personId"}},
			"CREATE TABLE IF NOT EXISTS [r] ([personId] num, [season] txt, PRIMARY KEY ([personId]))"},
		{"declared columns, in the key's order", []string{"season", "personId"}, []KeyColumn{{Name: "season"}, {Name: "personId"}},
			"CREATE TABLE IF NOT EXISTS [r] ([personId] num, [season] txt, PRIMARY KEY ([season], [personId]))"},
		{"a key column COMET does not declare", []string{"personId", "club"}, []KeyColumn{{Name: "personId"}, {Name: "club", Extra: true}},
			"CREATE TABLE IF NOT EXISTS [r] ([personId] num, [season] txt, [club] txt, PRIMARY KEY ([personId], [club]))"},
		{"content-keyed: the token, not null", []string{event.ContentKey}, []KeyColumn{{Name: TokenColumn, Extra: true, NotNull: true}},
			"CREATE TABLE IF NOT EXISTS [r] ([personId] num, [season] txt, [_cometstream_key] txt NOT NULL, PRIMARY KEY ([_cometstream_key]))"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table := &Table{Report: "r", Columns: cols, Key: tc.key}
			if got := table.PrimaryKey(); !slices.Equal(got, tc.want) {
				t.Errorf("PrimaryKey() = %+v, want %+v", got, tc.want)
			}
			if got := table.CreateTable(col("r"), col, sqlType); got != tc.create {
				t.Errorf("CreateTable() = %s, want %s", got, tc.create)
			}
		})
	}
}

// TestFirstGap: where a batch of events stops following on from the last
// event read, at its start or inside it.
func TestFirstGap(t *testing.T) {
	batch := func(seqs ...uint64) []*Message {
		var out []*Message
		for _, s := range seqs {
			out = append(out, &Message{Seq: s})
		}
		return out
	}
	for _, tc := range []struct {
		name string
		read uint64
		msgs []*Message
		want uint64
	}{
		{"follows on", 10, batch(11, 12, 13), 0},
		{"empty", 10, nil, 0},
		{"a gap before the first", 10, batch(14, 15), 11},
		{"a gap inside", 10, batch(11, 12, 20, 21), 13},
		{"two gaps: the first", 10, batch(12, 13, 20), 11},
		{"from the start of the stream", 0, batch(1, 2), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := firstGap(tc.read, tc.msgs); got != tc.want {
				t.Errorf("firstGap(%d, …) = %d, want %d", tc.read, got, tc.want)
			}
		})
	}
}
