//go:build !unix

package datadir

import "os"

// lockFile does nothing where flock(2) is not available: data_dir is then
// not guarded.
func lockFile(*os.File) error { return nil }

func unlockFile(*os.File) error { return nil }
