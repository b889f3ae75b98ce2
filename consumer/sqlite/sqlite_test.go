package sqlite

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cometstream/cometstream/consumer/sinktest"
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
