package redact

import (
	"strings"
	"testing"
)

// TestURL: no credential of a URL survives, and a URL without any is kept
// as written.
func TestURL(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"https://hooks.example.org/in", "https://hooks.example.org/in"},
		{"nats://c:4222", "nats://c:4222"},
		{"nats://s3cr3t@a:4222", "nats://xxxxx@a:4222"},
		{"nats://u:pw-s3cr3t@b:4222", "nats://u:xxxxx@b:4222"},
		{"https://h.example.org/in?token=s3cr3t&x=1", "https://h.example.org/in"},
		{"https://h.example.org/in#s3cr3t", "https://h.example.org/in"},
		{"https://h.example.org/in?", "https://h.example.org/in"},
		{"https://u:s3cr3t@h.example.org/in?k=s3cr3t#s3cr3t", "https://u:xxxxx@h.example.org/in"},
		// Does not parse (a bad escape): cut as text.
		{"https://u:s3cr3t@h.example.org/%zz?k=s3cr3t", "https://h.example.org/%zz"},
		// No scheme: NATS takes host:port.
		{"127.0.0.1:4222", "127.0.0.1:4222"},
		{"u:s3cr3t@127.0.0.1:4222", "127.0.0.1:4222"},
		{"s3cr3t@127.0.0.1:4222?x=s3cr3t", "127.0.0.1:4222"},
	} {
		got := URL(c.in)
		if got != c.want || strings.Contains(got, "s3cr3t") {
			t.Errorf("URL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestURLs: each URL of a list is redacted, spaces after commas dropped.
func TestURLs(t *testing.T) {
	got := URLs("nats://s3cr3t@a:4222, nats://u:pw-s3cr3t@b:4222,nats://c:4222")
	if want := "nats://xxxxx@a:4222,nats://u:xxxxx@b:4222,nats://c:4222"; got != want {
		t.Errorf("URLs: %s, want %s", got, want)
	}
	for in, want := range map[string]string{"": "", "a, ,b": "a,,b"} {
		if got := URLs(in); got != want {
			t.Errorf("URLs(%q) = %q, want %q", in, got, want)
		}
	}
}
