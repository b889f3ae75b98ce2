package natsserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v: %.200s", url, err, body)
		}
	}
	return resp.StatusCode
}

// TestMonitor: the monitoring listener is off unless asked for; on, /varz
// says which server answers and /healthz?js-enabled-only=true (what
// container health checks ask) answers 200.
func TestMonitor(t *testing.T) {
	off, err := Start(Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(off.Shutdown)
	if addr := off.MonitorAddr(); addr != nil {
		t.Errorf("monitoring listens on %s without being asked", addr)
	}

	srv, err := Start(Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Monitor: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	addr := srv.MonitorAddr()
	if addr == nil || !addr.IP.IsLoopback() {
		t.Fatalf("monitoring address %v", addr)
	}
	var varz struct {
		Version    string `json:"version"`
		ServerName string `json:"server_name"`
		JetStream  struct {
			Config struct {
				StoreDir string `json:"store_dir"`
			} `json:"config"`
		} `json:"jetstream"`
	}
	if status := getJSON(t, "http://"+addr.String()+"/varz", &varz); status != http.StatusOK {
		t.Fatalf("/varz answered %d", status)
	}
	if varz.Version != server.VERSION || varz.ServerName != "cometstream" || varz.JetStream.Config.StoreDir == "" {
		t.Errorf("/varz: version %q server %q store %q, want %q cometstream and a store", varz.Version, varz.ServerName, varz.JetStream.Config.StoreDir, server.VERSION)
	}
	if status := getJSON(t, "http://"+addr.String()+"/healthz?js-enabled-only=true", nil); status != http.StatusOK {
		t.Errorf("/healthz?js-enabled-only=true answered %d", status)
	}
}

func TestMonitorRefusesPublicWithoutAuth(t *testing.T) {
	_, err := Start(Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Monitor: "0.0.0.0:0"})
	if !errors.Is(err, ErrUnsafeListen) || !errors.Is(err, ErrMonitor) {
		t.Fatalf("non-loopback monitoring without users: %v", err)
	}
	srv, err := Start(Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Monitor: "0.0.0.0:0",
		Users: []User{{Name: "admin", Password: "pw", Role: "admin"}}})
	if err != nil {
		t.Fatalf("with users: %v", err)
	}
	srv.Shutdown()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Start(Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Monitor: ln.Addr().String()})
	if !errors.Is(err, ErrAddressInUse) || !errors.Is(err, ErrMonitor) {
		t.Fatalf("a taken monitoring port: %v", err)
	}
}

// TestSystemAccount: an admin placed in the system account gets the
// answers `nats server info` and `nats server report jetstream` ask for;
// the users of the stream's account keep JetStream and do not; and a
// client without credentials is still refused.
func TestSystemAccount(t *testing.T) {
	srv, err := Start(Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Users: []User{
		{Name: "producer", Password: "producer-pw", Role: "producer"},
		{Name: "admin", Password: "admin-pw", Role: "admin"},
		{Name: "sys", Password: "sys-pw", Role: "admin", System: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	url := srv.ClientURL()

	sys, _, err := connect(t, url, "sys", "sys-pw")
	if err != nil {
		t.Fatalf("the system admin cannot connect: %v", err)
	}
	for subject, check := range map[string]func(data map[string]any) bool{
		// nats server info
		"$SYS.REQ.SERVER.PING.VARZ": func(d map[string]any) bool { return d["version"] == server.VERSION },
		// nats server report jetstream
		"$SYS.REQ.SERVER.PING.JSZ": func(d map[string]any) bool { _, ok := d["config"]; return ok },
	} {
		msg, err := sys.Request(subject, nil, 5*time.Second)
		if err != nil {
			t.Errorf("%s as the system admin: %v", subject, err)
			continue
		}
		var reply struct {
			Server struct {
				Name string `json:"name"`
			} `json:"server"`
			Data  map[string]any `json:"data"`
			Error any            `json:"error"`
		}
		if err := json.Unmarshal(msg.Data, &reply); err != nil || reply.Error != nil || reply.Server.Name != "cometstream" || !check(reply.Data) {
			t.Errorf("%s: %v %.300s", subject, err, msg.Data)
		}
	}

	for _, user := range []string{"admin", "producer"} {
		nc, _, err := connect(t, url, user, user+"-pw")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Request("$SYS.REQ.SERVER.PING.VARZ", nil, time.Second); !errors.Is(err, nats.ErrNoResponders) {
			t.Errorf("%s reached the system account: %v", user, err)
		}
		js, _ := jetstream.New(nc)
		if _, err := js.AccountInfo(context.Background()); err != nil {
			t.Errorf("%s lost JetStream next to a system account: %v", user, err)
		}
	}

	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatal("a client without credentials connected to a server with a system account")
	}
}

func TestSystemAccountIsForAdmins(t *testing.T) {
	_, err := Start(Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Users: []User{
		{Name: "sink", Password: "pw", Role: "subscriber", System: true},
	}})
	if err == nil {
		t.Fatal("a subscriber was placed in the system account")
	}
}
