package opshttp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Paths of the endpoint: what `cometstream health` and probes ask for.
const (
	HealthPath = "/healthz"
	ReadyPath  = "/readyz"
	PprofPath  = "/debug/pprof/"
)

// Config configures an operations endpoint.
type Config struct {
	// Addr is the host:port to listen on; port 0 picks a free port (Addr
	// of the Server says which).
	Addr string
	// Registry is served at /metrics; nil serves NewRegistry's collectors.
	Registry prometheus.Gatherer
	// Ready answers /readyz; nil is always ready.
	Ready func() bool
	// Pprof serves Go's profiles under /debug/pprof/; without it those
	// paths answer 404. (The command line is not served: flags may hold
	// secrets.)
	Pprof bool
	// Logger says where the endpoint listens; nil discards.
	Logger *slog.Logger
}

// Server is a running operations endpoint.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// NewRegistry returns a registry with the Go and process collectors and
// cometstream_build_info (RegisterBuildInfo).
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	RegisterBuildInfo(reg)
	return reg
}

// Start listens on c.Addr and serves until Close. It returns an error when
// the address cannot be listened on.
func Start(c Config) (*Server, error) {
	if c.Registry == nil {
		c.Registry = NewRegistry()
	}
	if c.Ready == nil {
		c.Ready = func() bool { return true }
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return nil, fmt.Errorf("operations endpoint: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(c.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET "+HealthPath, func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET "+ReadyPath, func(w http.ResponseWriter, _ *http.Request) {
		if c.Ready() {
			fmt.Fprintln(w, "ready")
			return
		}
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	})
	paths := "/metrics " + HealthPath + " " + ReadyPath
	if c.Pprof {
		// Index serves the named profiles too (/debug/pprof/heap, …).
		mux.HandleFunc("GET "+PprofPath, pprof.Index)
		mux.HandleFunc("GET "+PprofPath+"profile", pprof.Profile)
		mux.HandleFunc("GET "+PprofPath+"trace", pprof.Trace)
		mux.HandleFunc("GET "+PprofPath+"symbol", pprof.Symbol)
		paths += " " + PprofPath
	}
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln: ln, done: make(chan error, 1)}
	go func() { s.done <- s.srv.Serve(ln) }()
	c.Logger.Info("operations endpoint", "addr", ln.Addr().String(), "paths", paths)
	if c.Pprof && !isLoopback(ln.Addr()) {
		c.Logger.Warn("Go's profiles are served beyond loopback: anyone who reaches the endpoint can read the process's memory", "addr", ln.Addr().String())
	}
	return s, nil
}

func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// Addr is the address it listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops serving, waiting for requests under way until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
