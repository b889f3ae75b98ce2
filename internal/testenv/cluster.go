package testenv

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/cometstream/cometstream/internal/natsserver"
)

// StartCluster starts n embedded servers clustered on loopback with random
// ports and waits until JetStream has a meta leader.
func StartCluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	servers := make([]*server.Server, n)
	for i := range servers {
		s, err := natsserver.Start(natsserver.Options{
			StoreDir: t.TempDir(), Listen: "127.0.0.1:0",
			Cluster: &natsserver.Cluster{Name: "comet", ServerName: fmt.Sprintf("n%d", i+1), Listen: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes},
		})
		if err != nil {
			t.Fatal(err)
		}
		servers[i] = s
		t.Cleanup(s.Shutdown)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		leader := false
		for _, s := range servers {
			if s.JetStreamIsLeader() {
				leader = true
			}
		}
		if leader {
			return servers
		}
		if time.Now().After(deadline) {
			t.Fatal("the cluster elected no JetStream leader")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ClusterURL joins the servers' client URLs.
func ClusterURL(servers []*server.Server) string {
	url := ""
	for i, s := range servers {
		if i > 0 {
			url += ","
		}
		url += s.ClientURL()
	}
	return url
}
