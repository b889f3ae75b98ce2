package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/consumer/sinktest"
)

// tempStore opens a store on a new database file in the test's temporary
// directory, closed when the test ends, and returns it with the file's path.
func tempStore(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sink.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// storeAndReader opens a store on a new database and a read-only store on
// the same file, both closed when the test ends.
func storeAndReader(t *testing.T) (*Store, *Store) {
	t.Helper()
	s, path := tempStore(t)
	r, err := OpenReadOnly(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return s, r
}

// TestReadRows reads back what the sink wrote, in event form, with the
// position, from a read-only store, which applies nothing.
func TestReadRows(t *testing.T) {
	s, r := storeAndReader(t)
	// SQLite keeps numbers as 64-bit floats.
	sinktest.ReadsBack(t, s, r, map[string]string{"42": "42", "125.50": "125.5", "12345678901234567890.10": "1.2345678901234567e+19", "-1.5e3": "-1500", "12345678901234567890": "1.2345678901234567e+19"})
	if err := r.Apply(context.Background(), &consumer.Batch{Positions: map[string]uint64{"fees": 8}}); err == nil {
		t.Error("a read-only store applied a batch")
	}
}

// TestReadRowsConsistent reads while a sink writes: the rows are always
// those of the position read with them.
func TestReadRowsConsistent(t *testing.T) {
	s, r := storeAndReader(t)
	sinktest.ReadsConsistent(t, s, r, 200)
}

// TestOpenReadOnly refuses what is not a sink's database, and creates
// nothing.
func TestOpenReadOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	if _, err := OpenReadOnly(ctx, missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("opening a missing file: %v, want not exist", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenReadOnly created %s", missing)
	}
	other := filepath.Join(dir, "other.db")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenReadOnly(ctx, other); err == nil {
		t.Error("opened a database that is not a sink's")
	}
}
