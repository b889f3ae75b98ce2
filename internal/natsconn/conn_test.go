package natsconn_test

import (
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/cometstream/cometstream/internal/natsconn"
	"github.com/cometstream/cometstream/internal/natsserver"
	"github.com/cometstream/cometstream/internal/testenv"
)

// TestBadURLNotQuoted: a URL that does not parse is named without its
// password, though nats.go quotes it whole.
func TestBadURLNotQuoted(t *testing.T) {
	_, err := natsconn.Connect(natsconn.Options{URL: "nats://u:BAD%zzs3cr3t@127.0.0.1:1?x=s3cr3tq"}, slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("a URL that does not parse connected")
	}
	if strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("error: %v", err)
	}
}

// TestReconnectLogHidesCredentials: the reconnect line names the server
// without the URL's token or query.
func TestReconnectLogHidesCredentials(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	start := func() *server.Server {
		srv, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir(), Listen: addr})
		if err != nil {
			t.Fatal(err)
		}
		return srv
	}
	srv := start()
	var logs testenv.Buffer
	nc, err := natsconn.Connect(natsconn.Options{URL: "nats://s3cr3tuser@" + addr + "?q=s3cr3tq"}, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	srv.Shutdown()
	srv.WaitForShutdown()
	srv = start()
	defer srv.Shutdown()
	testenv.WaitFor(t, "the reconnect to be logged", func() bool { return strings.Contains(logs.String(), "reconnected to NATS") })
	if strings.Contains(logs.String(), "s3cr3t") || !strings.Contains(logs.String(), addr) {
		t.Errorf("logs:\n%s", logs.String())
	}
}
