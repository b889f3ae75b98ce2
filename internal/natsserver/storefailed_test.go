package natsserver

import (
	"errors"
	"go/build"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestStoreFailedReported: the write error after which nats-server stores
// nothing more in a stream reaches OnStoreFailed, once, naming the stream
// and the system's error; other errors do not.
func TestStoreFailedReported(t *testing.T) {
	var mu sync.Mutex
	var got []error
	s, err := Start(Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", OnStoreFailed: func(err error) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, err)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	s.Errorf("JetStream failed to store a msg on stream '%s > %s': %v", "$G", "COMET", "write: no space left on device")
	s.Errorf(storeFailedFormat, "$G", "COMET", "write /data/1.blk: no space left on device")
	s.Errorf(storeFailedFormat, "$G", "KV_comet-state", "write /data/1.blk: no space left on device")
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("OnStoreFailed called %d times: %v", len(got), got)
	}
	if !errors.Is(got[0], ErrStoreFailed) || !strings.Contains(got[0].Error(), "COMET' critical write error: write /data/1.blk: no space left on device") {
		t.Errorf("OnStoreFailed got %v", got[0])
	}
}

// TestStoreFailedFormatIsTheServers: the format OnStoreFailed recognises
// is the one the nats-server in go.mod logs, so that an upgrade that
// rewords it fails here rather than silently.
func TestStoreFailedFormatIsTheServers(t *testing.T) {
	pkg, err := build.Import("github.com/nats-io/nats-server/v2/server", ".", build.FindOnly)
	if err != nil {
		t.Fatalf("find nats-server's source: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(pkg.Dir, "stream.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), `"`+storeFailedFormat+`"`) {
		t.Fatalf("nats-server's stream.go no longer logs %q", storeFailedFormat)
	}
}
