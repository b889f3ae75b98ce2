package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/cometstream/cometstream/internal/comet"
	"github.com/cometstream/cometstream/internal/config"
	"github.com/cometstream/cometstream/internal/datadir"
	"github.com/cometstream/cometstream/internal/natsconn"
	"github.com/cometstream/cometstream/internal/natsserver"
	"github.com/cometstream/cometstream/internal/opshttp"
	"github.com/cometstream/cometstream/internal/redact"
	"github.com/cometstream/cometstream/producer"
)

func runProduce(ctx context.Context, args []string) error {
	fs, cc := newConfigCommand("produce", "configuration file (required)")
	natsURL := fs.String("nats", "", "NATS URL; default nats.url, then $NATS_URL; none starts an embedded server")
	allow := fs.String("allow-deletes", "", "comma-separated reports whose current hold of deletes is released (refused for a report that holds none)")
	unsafe := fs.Bool("unsafe-listen-without-auth", false, "let the embedded server listen on a non-loopback address with no users configured")
	cfg, log, err := cc.parse(fs, args, false)
	if err != nil {
		return err
	}
	path, creds := cc.path, cc.creds
	reports, err := producerReports(cfg, log)
	if err != nil {
		return inFile(*path, err)
	}
	var allowDeletes []string
	if *allow != "" {
		for _, name := range strings.Split(*allow, ",") {
			if _, ok := cfg.Find(name); !ok {
				return usagef("--allow-deletes: no report %q in %s", name, *path)
			}
			allowDeletes = append(allowDeletes, name)
		}
	}
	url, from, envIgnored := producerURL(*natsURL, cfg)
	if envIgnored {
		log.Info("nats.listen is set in the configuration: starting the embedded server, not connecting to $NATS_URL (set nats.url or --nats to use another server)",
			"nats.listen", cfg.NATS.Listen, "NATS_URL", redact.URLs(os.Getenv("NATS_URL")))
	}
	return inFile(*path, produce(ctx, cfg, url, reports, allowDeletes, log, produceOptions{unsafeListen: *unsafe, creds: creds, urlFrom: from, command: "cometstream produce --config " + *path}))
}

// produceOptions are the command line's additions to the configuration.
type produceOptions struct {
	unsafeListen bool
	// creds, when set, override the configuration's connection credentials.
	creds natsconn.Options
	// onReady, when set, is called once the producer polls, with the NATS
	// URL in use.
	onReady func(url string)
	// command says who holds data_dir (never flags, which may hold secrets).
	command string
	// urlFrom says where the NATS URL came from (fromFlag, fromConfig,
	// fromEnv); default: the embedded server, or nats.url.
	urlFrom string
}

// produce runs the producer until ctx ends. A stop asked for while it
// opens the stream (Ctrl-C, SIGTERM) is a clean stop too, not a failure.
func produce(ctx context.Context, cfg *config.Config, url string, reports []producer.ReportConfig, allowDeletes []string, log *slog.Logger, po produceOptions) error {
	internal := ""
	from := po.urlFrom
	switch {
	case url == "":
		from = fromEmbedded
	case from == "":
		from = fromConfig
	}
	if cfg.HA.LeaseTTL > 0 && url == "" {
		return usagef("ha.lease_ttl: producers share reports through a NATS server they all reach: set nats.url (or --nats)")
	}
	// One process per data_dir, before anything opens it: a second embedded
	// server on a live JetStream store corrupts it.
	lock, err := datadir.Acquire(cfg.DataDir, po.command)
	if err != nil {
		if errors.Is(err, datadir.ErrLocked) {
			return &usageError{err: fmt.Errorf("data_dir %w", err)}
		}
		return err
	}
	defer lock.Release()
	setMemoryLimit(cfg, log)
	// An embedded server that can no longer write its store (its disk
	// full) answers no more publishes until it starts again: stop, so that
	// a restart once there is room goes on where the stream ends.
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	storeFailed := func(err error) {
		log.Error("stopping: the embedded NATS server could not write its store; make room under data_dir and start again (nothing is lost: the next start goes on from the stream)", "data_dir", cfg.DataDir, "err", err)
		stop(err)
	}
	embedded, url, err := startEmbedded(cfg, url, po.unsafeListen, &internal, storeFailed, log)
	if err != nil {
		return err
	}
	defer shutdownEmbedded(embedded, log)

	nopts, err := natsOptions(cfg.NATS, url)
	if err != nil {
		return err
	}
	nopts.Override(po.creds)
	if internal != "" {
		// The producer connects to its own embedded server as an internal
		// producer user whose password exists only in this process.
		nopts.User, nopts.Password, nopts.Creds, nopts.NKey, nopts.Token = internalUser, internal, "", "", ""
	}
	nopts.Name, nopts.Publisher = "cometstream producer", true
	nc, err := natsconn.Connect(nopts, log)
	if err != nil {
		return withURL(err, url, from)
	}
	defer nc.Close()
	log.Info("connected to NATS", "url", redact.URLs(nc.ConnectedUrl()), "from", from, "server", nc.ConnectedServerVersion())

	reg := opshttp.NewRegistry()
	instance := cfg.HA.Instance
	if instance == "" {
		instance = defaultInstance(cfg.DataDir)
	}
	p, err := producer.New(producer.Config{
		Conn: nc, Stream: cfg.NATS.Stream, Prefix: cfg.NATS.SubjectPrefix, Replicas: cfg.NATS.Replicas,
		DuplicateWindow: cfg.NATS.DuplicateWindow, MaxAge: cfg.NATS.MaxAge, MaxBytes: cfg.NATS.MaxBytesValue(),
		Reports: reports, AllowDeletes: allowDeletes,
		Logger: log, Registerer: reg, Progress: progressLine(),
		LeaseTTL: cfg.HA.LeaseTTL, InstanceID: instance,
	})
	if err != nil {
		return err
	}
	stopOps, err := serveOps(opshttp.Config{Addr: cfg.HTTP.Listen, Registry: reg, Ready: p.Ready, Pprof: cfg.HTTP.Pprof, Logger: log}, "http.listen")
	if err != nil {
		return err
	}
	defer stopOps()
	if err := p.Open(ctx); err != nil {
		if ctx.Err() != nil {
			if err := storeFailedError(ctx, cfg); err != nil {
				return err
			}
			log.Info("stopped while starting", "cause", err.Error())
			return nil
		}
		if errors.Is(err, producer.ErrStreamConflict) || errors.Is(err, producer.ErrKeyChanged) || errors.Is(err, producer.ErrReportChanged) ||
			errors.Is(err, producer.ErrStreamInUse) || errors.Is(err, producer.ErrNothingHeld) || errors.Is(err, producer.ErrNoFencing) {
			return &usageError{err: err}
		}
		return err
	}
	log.Info("producing", "nats", redact.URLs(url), "from", from, "stream", cfg.NATS.Stream, "reports", len(reports))
	if po.onReady != nil {
		po.onReady(url)
	}
	if err := p.Run(ctx); err != nil {
		return err
	}
	if err := storeFailedError(ctx, cfg); err != nil {
		return err
	}
	log.Info("stopped: every pass finished or abandoned, acknowledgements received")
	return nil
}

// storeFailedError returns the error produce ends with when it stopped
// because the embedded server could not write its store.
func storeFailedError(ctx context.Context, cfg *config.Config) error {
	if err := context.Cause(ctx); errors.Is(err, natsserver.ErrStoreFailed) {
		return fmt.Errorf("%w; make room under data_dir (%s) and start again", err, cfg.DataDir)
	}
	return nil
}

// setMemoryLimit applies memory_limit as Go's soft memory limit, unless
// GOMEMLIMIT in the environment already set one.
func setMemoryLimit(cfg *config.Config, log *slog.Logger) {
	if env := os.Getenv("GOMEMLIMIT"); env != "" {
		log.Info("memory limit from GOMEMLIMIT (memory_limit ignored)", "limit", env)
		return
	}
	n := cfg.MemoryLimitBytes()
	if n == 0 {
		return
	}
	debug.SetMemoryLimit(n)
	log.Info("memory limit", "memory_limit", config.ByteSize(n).String())
}

// internalUser is the producer's own account on an embedded server with
// users configured.
const internalUser = "cometstream-producer-internal"

// startEmbedded starts the embedded NATS server when no URL is configured.
// With users configured it also adds the producer's internal user and
// returns its password in *internal.
func startEmbedded(cfg *config.Config, url string, unsafeListen bool, internal *string, storeFailed func(error), log *slog.Logger) (*server.Server, string, error) {
	if url != "" {
		if cfg.NATS.Monitor != "" {
			log.Warn("nats.monitor is the embedded server's: ignored with a NATS URL", "nats.monitor", cfg.NATS.Monitor)
		}
		return nil, url, nil
	}
	dir := filepath.Join(cfg.DataDir, "nats")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("data_dir: %w", err)
	}
	users, err := embeddedUsers(cfg.NATS.Embedded, log)
	if err != nil {
		return nil, "", err
	}
	if len(users) > 0 {
		var b [24]byte
		_, _ = rand.Read(b[:])
		*internal = hex.EncodeToString(b[:])
		users = append(users, natsserver.User{Name: internalUser, Password: *internal, Role: "producer"})
	}
	var tls *natsserver.TLS
	if t := cfg.NATS.Embedded.TLS; t.Cert != "" {
		tls = &natsserver.TLS{Cert: t.Cert, Key: t.Key, CA: t.CA, Verify: t.Verify}
	}
	s, err := natsserver.Start(natsserver.Options{
		StoreDir: dir, Listen: cfg.NATS.Listen, Monitor: cfg.NATS.Monitor, SyncAlways: cfg.NATS.Sync == "always", Logger: log,
		Users: users, Stream: cfg.NATS.Stream, Prefix: cfg.NATS.SubjectPrefix, TLS: tls, AllowInsecureListen: unsafeListen,
		OnStoreFailed: storeFailed,
	})
	if err != nil {
		switch {
		case errors.Is(err, natsserver.ErrMonitor):
			return nil, "", &usageError{err: fmt.Errorf("nats.monitor: %w", err)}
		case errors.Is(err, natsserver.ErrUnsafeListen):
			return nil, "", &usageError{err: fmt.Errorf("nats.listen: %w", err)}
		case errors.Is(err, natsserver.ErrAddressInUse):
			return nil, "", &usageError{err: fmt.Errorf("nats.listen: %w (another producer on this machine? give each its own nats.listen and data_dir, or point it at a server with nats.url)", err)}
		}
		return nil, "", fmt.Errorf("nats.listen %s: %w", cfg.NATS.Listen, err)
	}
	log.Info("embedded NATS server", "url", s.ClientURL(), "version", server.VERSION, "store", dir, "sync", cfg.NATS.Sync)
	if addr := s.MonitorAddr(); addr != nil {
		log.Info("embedded NATS monitoring", "url", "http://"+addr.String(), "paths", "/varz /jsz /connz /healthz")
		if !addr.IP.IsLoopback() {
			log.Warn("the embedded server's monitoring listener asks nobody for credentials: whoever reaches it sees its connections and streams", "nats.monitor", cfg.NATS.Monitor)
		}
	}
	return s, s.ClientURL(), nil
}

// embeddedUsers resolves the configured users' passwords.
func embeddedUsers(e config.Embedded, log *slog.Logger) ([]natsserver.User, error) {
	var out []natsserver.User
	for i, u := range e.Users {
		field := fmt.Sprintf("nats.embedded.users[%d]", i)
		nu := natsserver.User{Name: u.Name, NKey: u.NKey, Role: u.Role, PasswordHash: u.PasswordHash, System: u.SystemAccount}
		switch {
		case u.PasswordEnv != "":
			v, err := config.Secret(field+".password", "", u.PasswordEnv)
			if err != nil {
				return nil, err
			}
			nu.Password = v
		case u.PasswordFile != "":
			v, err := config.ReadSecretFile(field+".password_file", u.PasswordFile, log)
			if err != nil {
				return nil, err
			}
			nu.Password = v
		}
		out = append(out, nu)
	}
	return out, nil
}

// shutdownEmbedded stops the embedded server, last of all.
func shutdownEmbedded(s *server.Server, log *slog.Logger) {
	if s == nil {
		return
	}
	s.Shutdown()
	s.WaitForShutdown()
	log.Info("embedded NATS server stopped")
}

// natsOptions builds connection options from the configuration file.
func natsOptions(n config.NATS, url string) (natsconn.Options, error) {
	password, err := config.Secret("nats.password", n.Password, n.PasswordEnv)
	if err != nil {
		return natsconn.Options{}, err
	}
	token, err := config.Secret("nats.token", n.Token, n.TokenEnv)
	if err != nil {
		return natsconn.Options{}, err
	}
	return natsconn.Options{
		URL: url, Creds: n.CredentialsFile, NKey: n.NKeyFile, User: n.User, Password: password, Token: token,
		TLSCA: n.TLS.CA, TLSCert: n.TLS.Cert, TLSKey: n.TLS.Key,
	}, nil
}

// producerReports resolves every report's key and shares one rate limiter
// per COMET user: per lane (config.Lane), the host of base_url and the user.
func producerReports(cfg *config.Config, log *slog.Logger) ([]producer.ReportConfig, error) {
	limiters := map[string]*comet.Limiter{}
	lanes := cfg.Lanes()
	var out []producer.ReportConfig
	for _, ref := range cfg.Reports() {
		key, err := ref.Report.ResolveAPIKey(ref.Field, log)
		if err != nil {
			return nil, err
		}
		lane := lanes[ref.Report.Name]
		lk := lane.Name()
		if limiters[lk] == nil {
			limiters[lk] = comet.NewLimiter(lane.RateLimit)
			if len(lane.Sources) > 1 {
				log.Warn("sources reach the same COMET as the same user: their reports share one rate limit", "sources", strings.Join(lane.Sources, ","), "user", lane.User, "rate_limit", lane.RateLimit)
			}
		}
		out = append(out, producer.ReportConfig{
			Name: ref.Report.Name, Key: ref.Report.Key, Interval: ref.Report.Interval,
			PageSize: ref.Report.PageSize, MaxDeleteFraction: *ref.Report.MaxDeleteFraction,
			Comet: comet.Config{
				BaseURL: ref.Source.BaseURL, APIKey: key, Limiter: limiters[lk], Timeout: ref.Source.Timeout,
				Path: ref.Report.Path, Params: ref.Report.Params,
			},
			Group: lk,
		})
	}
	return out, nil
}

// progressLine shows a long pass's pages and rows on a terminal.
func progressLine() func(report string, pages, lastPage, rows int) {
	if !isTerminal(os.Stderr) {
		return nil
	}
	var mu sync.Mutex
	last := time.Time{}
	return func(report string, pages, lastPage, rows int) {
		if lastPage < 9 {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		done := pages == lastPage+1
		if !done && time.Since(last) < 250*time.Millisecond {
			return
		}
		last = time.Now()
		fmt.Fprintf(os.Stderr, "\r%s: page %d/%d, %d rows", report, pages, lastPage+1, rows)
		if done {
			fmt.Fprintln(os.Stderr)
		}
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// defaultInstance names a producer by its host and data directory, so that
// the same producer restarted takes its leases back at once.
func defaultInstance(dataDir string) string {
	host, _ := os.Hostname()
	abs, _ := filepath.Abs(dataDir)
	sum := sha256.Sum256([]byte(abs))
	return host + "-" + hex.EncodeToString(sum[:4])
}
