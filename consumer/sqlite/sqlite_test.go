package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/consumer/sinktest"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/testenv"
)

// dirs gives each test one directory for its databases.
var dirs sync.Map

func dbPath(t *testing.T, name string) string {
	d, ok := dirs.Load(t.Name())
	if !ok {
		d, _ = dirs.LoadOrStore(t.Name(), t.TempDir())
	}
	return filepath.Join(d.(string), name+".db")
}

func target() sinktest.Target {
	return sinktest.Target{
		Kind: "sqlite",
		Args: func(t *testing.T, name string) []string { return []string{"--db", dbPath(t, name)} },
		Rows: func(t *testing.T, name, report string) []map[string]any {
			return readTable(t, dbPath(t, name), report)
		},
	}
}

// readTable reads a table with its own connection, as a user's reader would.
func readTable(t *testing.T, path, report string) []map[string]any {
	t.Helper()
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT * FROM ` + Ident(report))
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return nil
		}
		t.Fatal(err)
	}
	return testenv.SQLRows(t, rows)
}

func TestConvergence(t *testing.T)  { sinktest.Convergence(t, target()) }
func TestReplay(t *testing.T)       { sinktest.Replay(t, target()) }
func TestSchemaChange(t *testing.T) { sinktest.SchemaChange(t, target()) }
func TestHostile(t *testing.T)      { sinktest.Hostile(t, target()) }

// TestStoreSuite runs the suite every consumer.Store passes against the
// SQLite store, in-process.
func TestStoreSuite(t *testing.T) {
	var paths sync.Map // *Store → its file
	sinktest.RunStore(t, sinktest.StoreTarget{
		Open: func(t *testing.T, name string) consumer.Store {
			path := dbPath(t, "store-"+name)
			s, err := Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			paths.Store(s, path)
			return s
		},
		Rows: func(t *testing.T, s consumer.Store, report string) []event.Row {
			path, _ := paths.Load(s)
			return sinktest.RowsFromSQL(t, s, report, readTable(t, path.(string), report))
		},
	})
}

func TestBootstrapKilled(t *testing.T) { sinktest.BootstrapKilled(t, target()) }
