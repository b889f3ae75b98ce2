package datadir

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// LockFile is the file in data_dir that holds the lock and says who holds
// it.
const LockFile = "cometstream.lock"

// ErrLocked is wrapped by Lock's error when another process holds the
// directory; the error names it (a *LockedError).
var ErrLocked = errors.New("data_dir is in use")

// Holder describes the process holding a data_dir.
type Holder struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Command string    `json:"command"`
	Since   time.Time `json:"since"`
}

// LockedError says which process holds a directory.
type LockedError struct {
	Dir    string
	Holder Holder // zero when the lock file could not be read
}

func (e *LockedError) Error() string {
	h := e.Holder
	if h.PID == 0 {
		return fmt.Sprintf("%s: %v by another process", e.Dir, ErrLocked)
	}
	return fmt.Sprintf("%s: %v by %q (pid %d on %s, since %s): stop it first, or give this one another data_dir",
		e.Dir, ErrLocked, h.Command, h.PID, h.Host, h.Since.Format(time.RFC3339))
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// Lock is a held data_dir.
type Lock struct {
	f *os.File
}

// Acquire creates dir if needed and locks it for this process, writing who
// holds it into the lock file. It fails at once, with a *LockedError, when
// another process holds it. The lock ends with the process, or with
// Release; a lock left by a killed process does not block.
func Acquire(dir, command string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		le := &LockedError{Dir: dir}
		if b, rerr := os.ReadFile(path); rerr == nil {
			_ = json.Unmarshal(b, &le.Holder)
		}
		return nil, le
	}
	host, _ := os.Hostname()
	b, _ := json.Marshal(Holder{PID: os.Getpid(), Host: host, Command: command, Since: time.Now().UTC()})
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt(append(b, '\n'), 0)
		_ = f.Sync()
	}
	return &Lock{f: f}, nil
}

// Release unlocks the directory.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := unlockFile(l.f)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}
