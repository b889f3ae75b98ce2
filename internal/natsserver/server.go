package natsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"

	"github.com/cometstream/cometstream/event"
)

// Options configures the embedded server.
type Options struct {
	// StoreDir is where JetStream keeps its files.
	StoreDir string
	// Listen is the client address, host:port; port 0 picks a free port.
	Listen string
	// Monitor, when set, is the address (host:port) of the server's HTTP
	// monitoring listener (/varz, /jsz, /connz, /healthz, …); port 0 picks
	// a free port (the server's MonitorAddr says which). Like Listen, an
	// address other than loopback needs Users or AllowInsecureListen: the
	// monitoring endpoint itself asks nobody for credentials.
	Monitor string
	// SyncAlways makes JetStream fsync every write before acknowledging it.
	// By default it fsyncs every two minutes, and a machine crash (not a
	// process crash) can lose acknowledged messages written since.
	SyncAlways bool
	// Users, when set, turns on authentication; each gets the permissions
	// of its role over Stream and Prefix.
	Users []User
	// Stream and Prefix scope the roles' permissions (defaults COMET, comet).
	Stream, Prefix string
	// TLS, when set, is the client port's TLS configuration.
	TLS *TLS
	// AllowInsecureListen permits a non-loopback client or monitoring
	// address without authentication.
	AllowInsecureListen bool
	// Cluster, when set, makes the server one node of a JetStream cluster.
	Cluster *Cluster
	Logger  *slog.Logger
	// OnStoreFailed, when set, is called once, with an error wrapping
	// ErrStoreFailed that names the stream and the system's error, when a
	// write to JetStream's store fails (its disk full, or failing). The
	// stream then stores nothing more until the server starts again.
	OnStoreFailed func(error)
}

// ErrStoreFailed: the embedded server could not write its store. It
// answers no publish to that stream from then on (nats-server keeps the
// write error until it restarts), even once there is room again.
var ErrStoreFailed = errors.New("the embedded NATS server could not write its store (its disk full, or failing) and stores nothing more until it starts again")

// TLS names the files of the client port's certificate.
type TLS struct {
	Cert, Key, CA string
	// Verify requires client certificates signed by CA.
	Verify bool
}

// Cluster places a server in a cluster.
type Cluster struct {
	Name       string
	ServerName string
	// Listen is the route address, host:port.
	Listen string
	// Routes are the other nodes' route URLs (nats-route://host:port).
	Routes []string
}

// ErrAddressInUse is returned when the client address cannot be listened
// on (another process has it).
var ErrAddressInUse = errors.New("the address is in use, or cannot be listened on")

// ErrUnsafeListen is returned for a non-loopback listen address without
// authentication.
var ErrUnsafeListen = errors.New("refusing to listen on a non-loopback address without authentication")

// ErrMonitor is wrapped, together with ErrUnsafeListen, ErrAddressInUse
// or a parse error, by the errors about Options.Monitor, so that callers
// can name the setting it came from.
var ErrMonitor = errors.New("monitoring listener")

// Start starts the server and waits until it accepts connections.
func Start(o Options) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", o.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("listen address %q: bad port", o.Listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if !isLoopback(host) && len(o.Users) == 0 && !o.AllowInsecureListen {
		return nil, fmt.Errorf("%w: %q (configure nats.embedded.users, or pass --unsafe-listen-without-auth)", ErrUnsafeListen, o.Listen)
	}
	if port != server.RANDOM_PORT {
		// The server retries a taken port for as long as it is asked to
		// wait, then says nothing useful: find out first.
		ln, err := net.Listen("tcp", o.Listen)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrAddressInUse, o.Listen, err)
		}
		ln.Close()
	}
	monHost, monPort, err := monitorAddr(o)
	if err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName:         "cometstream",
		Host:               host,
		Port:               port,
		JetStream:          true,
		StoreDir:           o.StoreDir,
		SyncAlways:         o.SyncAlways,
		NoSigs:             true,
		MaxPayload:         8 << 20,
		JetStreamMaxMemory: 256 << 20,
		HTTPHost:           monHost,
		HTTPPort:           monPort,
	}
	if hasSystemUser(o.Users) {
		// A system account with users and no authorization block makes the
		// server let clients without credentials into the global account
		// (nats-server's convenience for a configuration that only adds
		// system users). Declaring the block, empty, keeps every client
		// authenticated; the users themselves are set below.
		if err := opts.ProcessConfigString("authorization {}"); err != nil {
			return nil, fmt.Errorf("embedded NATS: %w", err)
		}
		opts.Accounts = []*server.Account{server.NewAccount(server.DEFAULT_SYSTEM_ACCOUNT)}
		opts.SystemAccount = server.DEFAULT_SYSTEM_ACCOUNT
	}
	if o.Stream == "" {
		o.Stream = event.DefaultStream
	}
	if o.Prefix == "" {
		o.Prefix = event.DefaultPrefix
	}
	for _, u := range o.Users {
		perms, err := Permissions(u.Role, o.Stream, o.Prefix)
		if err != nil {
			return nil, err
		}
		var acc *server.Account // nil: the global account, which holds the stream
		if u.System {
			if u.Role != "admin" {
				return nil, fmt.Errorf("user %q: only an admin may use the system account", u.Name)
			}
			acc = opts.Accounts[0]
		}
		if u.NKey != "" {
			opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: u.NKey, Permissions: perms, Account: acc})
		} else {
			opts.Users = append(opts.Users, &server.User{Username: u.Name, Password: held(u), Permissions: perms, Account: acc})
		}
	}
	if c := o.Cluster; c != nil {
		h, p, err := net.SplitHostPort(c.Listen)
		if err != nil {
			return nil, fmt.Errorf("cluster listen %q: %w", c.Listen, err)
		}
		port, _ := strconv.Atoi(p)
		opts.ServerName = c.ServerName
		opts.Cluster = server.ClusterOpts{Name: c.Name, Host: h, Port: port}
		opts.Routes = server.RoutesFromStr(strings.Join(c.Routes, ","))
	}
	if o.TLS != nil {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: o.TLS.Cert, KeyFile: o.TLS.Key, CaFile: o.TLS.CA, Verify: o.TLS.Verify})
		if err != nil {
			return nil, fmt.Errorf("embedded NATS TLS: %w", err)
		}
		opts.TLSConfig, opts.TLS, opts.TLSVerify = tc, true, o.TLS.Verify
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	var lg *logger
	if o.Logger != nil || o.OnStoreFailed != nil {
		log := o.Logger
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		lg = &logger{log: log.With("component", "nats-server"), onStoreFailed: o.OnStoreFailed}
		lg.starting.Store(true)
		s.SetLoggerV2(lg, false, false, false)
	}
	go s.Start()
	if lg != nil {
		defer lg.starting.Store(false)
	}
	if o.Cluster != nil {
		// A cluster node answers once routes are up; JetStream waits for
		// its peers (see testenv.StartCluster).
		if !s.ReadyForConnections(30 * time.Second) {
			s.Shutdown()
			return nil, fmt.Errorf("cluster node %s did not start", o.Cluster.ServerName)
		}
		return s, nil
	}
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded NATS did not start listening on %s", o.Listen)
	}
	return s, nil
}

// monitorAddr checks Options.Monitor and returns the host and port of
// server.Options (port 0: monitoring off).
func monitorAddr(o Options) (string, int, error) {
	if o.Monitor == "" {
		return "", 0, nil
	}
	host, portStr, err := net.SplitHostPort(o.Monitor)
	if err != nil {
		return "", 0, fmt.Errorf("%w: address %q: %w", ErrMonitor, o.Monitor, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%w: address %q: bad port", ErrMonitor, o.Monitor)
	}
	if !isLoopback(host) && len(o.Users) == 0 && !o.AllowInsecureListen {
		return "", 0, fmt.Errorf("%w: %w: %q (configure nats.embedded.users, or pass --unsafe-listen-without-auth)", ErrMonitor, ErrUnsafeListen, o.Monitor)
	}
	if host == "" {
		// nats-server would take the client address's host instead.
		host = "0.0.0.0"
	}
	if port == 0 {
		return host, server.RANDOM_PORT, nil
	}
	// A monitoring port the server cannot listen on stops it without a
	// word: find out first.
	ln, err := net.Listen("tcp", o.Monitor)
	if err != nil {
		return "", 0, fmt.Errorf("%w: %w: %s: %w", ErrMonitor, ErrAddressInUse, o.Monitor, err)
	}
	ln.Close()
	return host, port, nil
}

func hasSystemUser(users []User) bool {
	for _, u := range users {
		if u.System {
			return true
		}
	}
	return false
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// logger sends the server's log lines to slog. While the server starts,
// its notices (a banner of some 25 lines, every stream restored) are
// debug: the caller logs one line with what matters once it is up.
type logger struct {
	log      *slog.Logger
	starting atomic.Bool
	// onStoreFailed is Options.OnStoreFailed; failed says it was called.
	onStoreFailed func(error)
	failed        atomic.Bool
}

// storeFailedFormat is how nats-server logs the write error after which a
// stream stores nothing more (stream.go, setWriteErrLocked).
const storeFailedFormat = "JetStream stream '%s > %s' critical write error: %v"

func (l *logger) Noticef(format string, v ...any) {
	level := slog.LevelInfo
	if l.starting.Load() {
		level = slog.LevelDebug
	}
	l.log.Log(context.Background(), level, fmt.Sprintf(format, v...))
}

func (l *logger) Warnf(format string, v ...any)  { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *logger) Fatalf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *logger) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg)
	if format == storeFailedFormat && l.onStoreFailed != nil && !l.failed.Swap(true) {
		l.onStoreFailed(fmt.Errorf("%w: %s", ErrStoreFailed, msg))
	}
}
func (l *logger) Debugf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *logger) Tracef(format string, v ...any) {}

// held is the password the server keeps for a user: the hash given, or a
// bcrypt hash of the plain password, so that the server warns of no
// plaintext password. The hash never leaves this process, which holds the
// password anyway, so the cheapest cost does: a client's connect checks it
// in about a millisecond. A password bcrypt cannot take (over 72 bytes) is
// kept as it is, which the server compares as it is (and warns of).
func held(u User) string {
	if u.PasswordHash != "" || u.Password == "" {
		return u.PasswordHash
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(u.Password), bcrypt.MinCost)
	if err != nil {
		return u.Password
	}
	return string(hash)
}
