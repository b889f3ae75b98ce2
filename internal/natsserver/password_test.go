package natsserver_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/cometstream/cometstream/internal/natsserver"
	"github.com/cometstream/cometstream/internal/testenv"
)

// TestPasswordsHeldHashed: passwords given in plain text (from a variable
// or a file) are held as bcrypt hashes, so the server warns of no
// plaintext password; each still admits its user and no other password
// does, one that looks like a hash included. A password too long for
// bcrypt is held as it is, and works.
func TestPasswordsHeldHashed(t *testing.T) {
	long := strings.Repeat("p", 80)
	const dollar = "$2a$10$plain-not-a-hash"
	start := func(users ...natsserver.User) (string, string) {
		var buf testenv.Buffer
		srv, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Users: users,
			Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
		return srv.ClientURL(), buf.String()
	}
	url, logs := start(natsserver.User{Name: "producer", Password: "producer-pw", Role: "producer"}, natsserver.User{Name: "sink", Password: "sink-pw", Role: "subscriber"},
		// A plain password that looks like a hash is still a password.
		natsserver.User{Name: "dollar", Password: dollar, Role: "subscriber"})
	if strings.Contains(logs, "Plaintext passwords") {
		t.Errorf("the server warns of plaintext passwords:\n%s", logs)
	}
	longURL, _ := start(natsserver.User{Name: "long", Password: long, Role: "subscriber"})
	for _, tc := range []struct {
		url, user, pw string
		ok            bool
	}{
		{url, "producer", "producer-pw", true},
		{url, "sink", "sink-pw", true},
		{url, "producer", "producer-pX", false},
		{url, "producer", "sink-pw", false},
		{url, "producer", "", false},
		{url, "dollar", dollar, true},
		{longURL, "long", long, true},
		{longURL, "long", long[:72], false},
	} {
		nc, err := nats.Connect(tc.url, nats.UserInfo(tc.user, tc.pw))
		if err == nil {
			nc.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf("%s with %q: connect error %v, want admitted %v", tc.user, tc.pw, err, tc.ok)
		}
	}
}
