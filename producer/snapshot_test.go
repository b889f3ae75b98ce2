package producer

import (
	"fmt"
	"testing"
)

// TestSnapshotIndexCollisions forces every token into one hash bucket and
// checks the index still tells them apart.
func TestSnapshotIndexCollisions(t *testing.T) {
	s := newSnapshot(nil, "b")
	for i := range 1000 {
		tok := fmt.Sprintf("k%d", i)
		if _, ok := s.find(tok); ok {
			t.Fatalf("%s found before it was added", tok)
		}
		j := s.add(tok)
		s.entries[j].rev = uint64(i)
	}
	for i := range 1000 {
		tok := fmt.Sprintf("k%d", i)
		j, ok := s.find(tok)
		if !ok || s.entries[j].rev != uint64(i) || s.token(j) != tok {
			t.Fatalf("%s: found %v at %d (rev %d, token %q)", tok, ok, j, s.entries[j].rev, s.token(j))
		}
	}

	// The same again with a degenerate hash: every token collides.
	c := newSnapshot(nil, "b")
	c.hash = func(string) uint64 { return 42 }
	for i := range 50 {
		j := c.add(fmt.Sprintf("k%d", i))
		c.entries[j].rev = uint64(i)
	}
	for i := range 50 {
		tok := fmt.Sprintf("k%d", i)
		if j, ok := c.find(tok); !ok || c.entries[j].rev != uint64(i) || c.token(j) != tok {
			t.Fatalf("colliding %s: found %v at %d", tok, ok, j)
		}
	}
	if _, ok := c.find("k50"); ok {
		t.Fatal("found a token never added")
	}
}
