package datadir

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestSecondLockFailsNamingTheHolder(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir, "cometstream produce --config a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to an open file: a second open in this process
	// is refused like another process (see TestLockFromAnotherProcess).
	_, err = Acquire(dir, "second")
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) || le.Holder.PID != os.Getpid() || !strings.Contains(err.Error(), "cometstream produce --config a.yaml") {
		t.Fatalf("second lock in the same process: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if l2, err := Acquire(dir, "third"); err != nil {
		t.Fatalf("after Release: %v", err)
	} else {
		l2.Release()
	}
}

// TestLockFromAnotherProcess locks a directory in a child process and checks
// this one is refused until the child is killed.
func TestLockFromAnotherProcess(t *testing.T) {
	if os.Getenv("DATADIR_HOLD") != "" {
		if _, err := Acquire(os.Getenv("DATADIR_HOLD"), "the child"); err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("locked\n")
		select {} // hold it until killed
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=TestLockFromAnotherProcess$")
	cmd.Env = append(os.Environ(), "DATADIR_HOLD="+dir)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := out.Read(buf); err != nil || string(buf) != "locked\n" {
		t.Fatalf("child: %q %v", buf, err)
	}
	_, err := Acquire(dir, "me")
	var le *LockedError
	if !errors.As(err, &le) || le.Holder.PID != cmd.Process.Pid || le.Holder.Command != "the child" {
		t.Fatalf("while the child holds it: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	l, err := Acquire(dir, "me")
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	l.Release()
}
