package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/cometstream/cometstream/internal/opshttp"
)

// healthProbe is one request of `cometstream health`.
type healthProbe struct {
	url     *url.URL
	timeout time.Duration
}

// parseHealth reads the flags of `cometstream health`.
func parseHealth(args []string) (healthProbe, error) {
	fs := newFlags("health")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: cometstream health --url URL [--ready] [--timeout 3s]

Asks the operations endpoint at URL (the --http or http.listen of a producer, a sink or the webhook
bridge, e.g. http://127.0.0.1:9464) for %s, or %s with --ready, and exits 0 when it answers 200,
1 otherwise, saying what came back: a health check for images without a shell.

flags:
`, opshttp.HealthPath, opshttp.ReadyPath)
		fs.PrintDefaults()
	}
	raw := fs.String("url", "", "base URL of the operations endpoint, e.g. http://127.0.0.1:9464 (required)")
	ready := fs.Bool("ready", false, "ask "+opshttp.ReadyPath+" (started and connected) instead of "+opshttp.HealthPath+" (alive)")
	path := fs.String("path", "", "ask this path instead, for an HTTP server without an operations endpoint (the simulator: /_sim/stats)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := parseFlags(fs, args); err != nil {
		return healthProbe{}, err
	}
	if *raw == "" {
		return healthProbe{}, usagef("--url is required, e.g. --url http://127.0.0.1:9464")
	}
	u, err := url.Parse(*raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return healthProbe{}, usagef("--url: %q must be an http(s) URL without a query, e.g. http://127.0.0.1:9464", *raw)
	}
	if *timeout <= 0 {
		return healthProbe{}, usagef("--timeout: %s must be positive", *timeout)
	}
	p := opshttp.HealthPath
	switch {
	case *path != "" && *ready:
		return healthProbe{}, usagef("--path and --ready exclude each other")
	case *path != "":
		if !strings.HasPrefix(*path, "/") || strings.ContainsAny(*path, "?#") {
			return healthProbe{}, usagef("--path: %q must start with / and hold no query", *path)
		}
		p = *path
	case *ready:
		p = opshttp.ReadyPath
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + p
	return healthProbe{url: u, timeout: *timeout}, nil
}

// check sends the request; it returns what a 200 said, or an error saying
// what came back instead.
func (p healthProbe) check(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url.String(), nil)
	if err != nil {
		return "", err
	}
	client := &http.Client{
		// A probe asks the address it was given: no proxy from the
		// environment, no redirect followed.
		Transport:     &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if ctx.Err() != nil {
		return "", fmt.Errorf("GET %s: no answer within %s", p.url.Redacted(), p.timeout)
	}
	if err != nil {
		// *url.Error names the method and the URL.
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	said := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %q", p.url.Redacted(), resp.Status, said)
	}
	return fmt.Sprintf("GET %s: %s: %s", p.url.Redacted(), resp.Status, said), nil
}

func runHealth(ctx context.Context, args []string) error {
	p, err := parseHealth(args)
	if err != nil {
		return err
	}
	said, err := p.check(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stdout, said)
	return nil
}
