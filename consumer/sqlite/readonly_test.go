package sqlite

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// readOnlyChild is set in the process TestReadOnlyDatabaseRefused starts
// as another user: the path of the database to open.
const readOnlyChild = "COMETSTREAM_TEST_READ_ONLY_DB"

// TestReadOnlyDatabaseRefused: a database file this user may read but not
// write is refused when the store opens, saying why, instead of failing
// every batch later. Root writes any file, so as root the test opens it as
// nobody (uid 65534), in a process of its own.
func TestReadOnlyDatabaseRefused(t *testing.T) {
	if path := os.Getenv(readOnlyChild); path != "" {
		s, err := Open(context.Background(), path)
		if err == nil {
			s.Close()
			os.Stdout.WriteString("opened\n")
			return
		}
		os.Stdout.WriteString(err.Error() + "\n")
		return
	}
	dir, err := os.MkdirTemp("", "readonly")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "sink.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	files, _ := filepath.Glob(path + "*")
	for _, f := range files {
		if err := os.Chmod(f, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	if os.Getuid() != 0 {
		_, err := Open(context.Background(), path)
		if !errors.Is(err, errReadOnly) || !strings.Contains(err.Error(), "read-only") {
			t.Fatalf("opening a read-only database: %v, want it refused as read-only", err)
		}
		return
	}
	// As nobody: the directory and a copy of this test binary must be
	// theirs to reach.
	bin := filepath.Join(dir, "sqlite.test")
	if err := copyFile(bin); err != nil {
		t.Fatal(err)
	}
	for _, p := range append(files, dir, bin) {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run", "^TestReadOnlyDatabaseRefused$")
	cmd.Env = append(os.Environ(), readOnlyChild+"="+path)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the test as nobody: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), errReadOnly.Error()) {
		t.Fatalf("opening a read-only database as nobody:\n%s\nwant it refused as read-only", out)
	}
}

// copyFile copies the running test binary to dst.
func copyFile(dst string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	data, err := os.ReadFile(self)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o755)
}
