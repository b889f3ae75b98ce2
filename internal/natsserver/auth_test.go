package natsserver

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"
)

func startAuth(t *testing.T, tls *TLS) string {
	t.Helper()
	hash, _ := bcrypt.GenerateFromPassword([]byte("admin-pw"), bcrypt.MinCost)
	srv, err := Start(Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", TLS: tls, Users: []User{
		{Name: "producer", Password: "producer-pw", Role: "producer"},
		{Name: "sink", Password: "sink-pw", Role: "subscriber"},
		{Name: "admin", PasswordHash: string(hash), Role: "admin"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv.ClientURL()
}

// connect returns a connection and a channel of the asynchronous errors the
// server sent it (permission violations arrive that way).
func connect(t *testing.T, url, user, pw string, opts ...nats.Option) (*nats.Conn, chan error, error) {
	errs := make(chan error, 10)
	opts = append(opts, nats.UserInfo(user, pw), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	nc, err := nats.Connect(url, opts...)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, errs, err
}

func TestRoles(t *testing.T) {
	url := startAuth(t, nil)
	ctx := context.Background()

	prod, _, err := connect(t, url, "producer", "producer-pw")
	if err != nil {
		t.Fatal(err)
	}
	pjs, _ := jetstream.New(prod)
	if _, err := pjs.CreateStream(ctx, jetstream.StreamConfig{Name: "COMET", Subjects: []string{"comet.>"}}); err != nil {
		t.Fatalf("the producer cannot create the stream: %v", err)
	}
	if _, err := pjs.Publish(ctx, "comet.players.row.created.1", []byte("{}")); err != nil {
		t.Fatalf("the producer cannot publish an event: %v", err)
	}
	kv, err := pjs.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "comet_players"})
	if err != nil {
		t.Fatal(err)
	}
	kv.Put(ctx, "1", []byte(`{"personId":1}`))

	sink, sinkErrs, err := connect(t, url, "sink", "sink-pw")
	if err != nil {
		t.Fatal(err)
	}
	sjs, _ := jetstream.New(sink, jetstream.WithDefaultTimeout(time.Second))

	// Forbidden: publishing an event, purging, deleting, writing a bucket.
	sink.Publish("comet.players.row.deleted.1", []byte("{}"))
	select {
	case err := <-sinkErrs:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") || !strings.Contains(err.Error(), "comet.players.row.deleted.1") {
			t.Errorf("publish error %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a sink published an event without a permissions violation")
	}
	ss, err := sjs.Stream(ctx, "COMET")
	if err != nil {
		t.Fatalf("a sink cannot look at the stream: %v", err)
	}
	if err := ss.Purge(ctx); err == nil {
		t.Error("a sink purged the stream")
	}
	if err := sjs.DeleteStream(ctx, "COMET"); err == nil {
		t.Error("a sink deleted the stream")
	}
	skv, err := sjs.KeyValue(ctx, "comet_players")
	if err != nil {
		t.Fatalf("a sink cannot open the snapshot: %v", err)
	}
	if _, err := skv.Put(ctx, "2", []byte("{}")); err == nil {
		t.Error("a sink wrote the snapshot")
	}
	s, _ := pjs.Stream(ctx, "COMET")
	if info, _ := s.Info(ctx); info.State.Msgs != 1 {
		t.Errorf("the stream holds %d messages after the sink's attempts, want 1", info.State.Msgs)
	}

	// Allowed: reading the snapshot, consuming and acknowledging.
	if e, err := skv.Get(ctx, "1"); err != nil || string(e.Value()) != `{"personId":1}` {
		t.Errorf("a sink cannot read the snapshot: %v", err)
	}
	cons, err := sjs.CreateOrUpdateConsumer(ctx, "COMET", jetstream.ConsumerConfig{Durable: "sink_test", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("a sink cannot create its consumer: %v", err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		n++
		if err := m.DoubleAck(ctx); err != nil {
			t.Errorf("a sink cannot acknowledge: %v", err)
		}
	}
	if n != 1 {
		t.Errorf("a sink fetched %d messages, want 1", n)
	}
	if err := sjs.DeleteConsumer(ctx, "COMET", "sink_test"); err == nil {
		t.Error("a sink deleted a consumer")
	}

	// Wrong passwords are refused.
	if _, _, err := connect(t, url, "sink", "wrong"); err == nil || !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("a wrong password: %v", err)
	}
	if _, _, err := connect(t, url, "admin", "admin-pw"); err != nil {
		t.Errorf("the admin (bcrypt hash) cannot connect: %v", err)
	}
}

// TestTLS runs the client port with a certificate from a test CA: a client
// trusting the CA connects, a plain one is refused.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := writeTestCA(t, dir)
	url := startAuth(t, &TLS{Cert: cert, Key: key})
	if _, _, err := connect(t, url, "sink", "sink-pw", nats.RootCAs(ca)); err != nil {
		t.Fatalf("TLS client: %v", err)
	}
	// A client that speaks the protocol in the clear, without upgrading.
	hostport := url[strings.Index(url, "://")+3:]
	conn, err := net.DialTimeout("tcp", hostport, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	info, _ := r.ReadString('\n')
	if !strings.Contains(info, `"tls_required":true`) {
		t.Errorf("INFO does not require TLS: %s", info)
	}
	fmt.Fprintf(conn, "CONNECT {\"user\":\"sink\",\"pass\":\"sink-pw\",\"verbose\":false}\r\nPING\r\n")
	reply, _ := r.ReadString('\n')
	if strings.HasPrefix(reply, "PONG") {
		t.Fatalf("a plain-text client was served: %q", reply)
	}
	// And nats.go without the test CA cannot verify the server.
	if nc, err := nats.Connect(url, nats.UserInfo("sink", "sink-pw"), nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a client that does not trust the CA connected")
	}
}

// writeTestCA writes a CA and a server certificate for 127.0.0.1, the way
// the README's security section makes them with openssl.
func writeTestCA(t *testing.T, dir string) (caPath, certPath, keyPath string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cometstream test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames: []string{"localhost"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", srvDER), write("server-key.pem", "EC PRIVATE KEY", keyDER)
}

func TestRefusesPublicListenWithoutAuth(t *testing.T) {
	_, err := Start(Options{StoreDir: t.TempDir(), Listen: "0.0.0.0:0"})
	if !errors.Is(err, ErrUnsafeListen) {
		t.Fatalf("non-loopback without users: %v", err)
	}
	srv, err := Start(Options{StoreDir: t.TempDir(), Listen: "0.0.0.0:0", AllowInsecureListen: true})
	if err != nil {
		t.Fatalf("with the unsafe flag: %v", err)
	}
	srv.Shutdown()
}
