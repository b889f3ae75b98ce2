//go:build unix

package datadir

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive, non-blocking advisory lock: the kernel
// releases it when the process ends, however it ends.
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

func unlockFile(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
