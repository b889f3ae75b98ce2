package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestPathOpensThatFile: the database is the file named, whatever its name
// holds. SQLite reads the name as a URI, where '#' and '?' end the path and
// '%' escapes: unescaped, "club#1.db" and "club#2.db" were both "club".
func TestPathOpensThatFile(t *testing.T) {
	dir := t.TempDir()
	names := []string{"club#1.db", "club#2.db", "q?mode=memory.db", "100%.db", "e%41.db", "sp ace.db", "//double.db"}
	ctx := context.Background()
	for i, name := range names {
		path := dir + "/" + name
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("open %q: %v", name, err)
		}
		if _, err := s.db.ExecContext(ctx, `INSERT INTO _cometstream_position (report, seq) VALUES ('r', ?)`, i+1); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if _, err := os.Stat(filepath.Clean(path)); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	var files []string
	for _, e := range entries {
		if filepath.Ext(e.Name()) == ".db" {
			files = append(files, e.Name())
		}
	}
	if len(files) != len(names) {
		t.Errorf("%d names made the files %q", len(names), files)
	}

	// A relative name, as verify may be given one.
	t.Chdir(dir)
	s, err := Open(ctx, "rel#ative.db")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, "rel#ative.db")); err != nil {
		t.Errorf("relative name: %v", err)
	}
	for i, name := range names {
		for _, open := range []func(context.Context, string) (*Store, error){Open, OpenReadOnly} {
			s, err := open(ctx, dir+"/"+name)
			if err != nil {
				t.Fatalf("reopen %q: %v", name, err)
			}
			var seq int
			if err := s.db.QueryRowContext(ctx, `SELECT seq FROM _cometstream_position WHERE report = 'r'`).Scan(&seq); err != nil || seq != i+1 {
				t.Errorf("%q holds %d (%v), want %d", name, seq, err, i+1)
			}
			s.Close()
		}
	}
}
