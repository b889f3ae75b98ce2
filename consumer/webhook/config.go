// Package webhook delivers cometstream's events to HTTP endpoints the way
// the Standard Webhooks specification describes (CONTRACT.md section 8):
// the event as stored, signed with HMAC-SHA256 under every configured
// secret, retried on a schedule, dead-lettered when the schedule runs out,
// and acknowledged in the stream only once delivered or dead-lettered.
package webhook

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cometstream/cometstream/internal/config"
	"github.com/cometstream/cometstream/internal/event"
)

// Config is the bridge's configuration file.
type Config struct {
	DeadLetterStream string     `yaml:"dead_letter_stream"`
	AllowPrivate     []string   `yaml:"allow_private"`
	Endpoints        []Endpoint `yaml:"endpoints"`

	allowed []*net.IPNet
}

// Endpoint is one receiver.
type Endpoint struct {
	Name        string          `yaml:"name"`
	URL         string          `yaml:"url"`
	Secrets     []string        `yaml:"secrets"`
	SecretsEnv  string          `yaml:"secrets_env"`
	SecretsFile string          `yaml:"secrets_file"`
	Types       []string        `yaml:"types"`
	Reports     []string        `yaml:"reports"`
	Timeout     time.Duration   `yaml:"timeout"`
	RateLimit   float64         `yaml:"rate_limit"`
	Concurrency int             `yaml:"concurrency"`
	Ordered     bool            `yaml:"ordered"`
	Retry       []time.Duration `yaml:"retry"`

	keys [][]byte // decoded secrets
}

// DefaultRetry is the schedule of waits before each retry.
var DefaultRetry = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

var allTypes = []string{event.TypeCreated, event.TypeUpdated, event.TypeDeleted, event.TypeSynced, event.TypeSchema, event.TypeUnavailable, event.TypeHeld}

func fieldErr(field, format string, args ...any) error {
	return fmt.Errorf("%w: %w", config.ErrInvalid, &config.FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Parse reads the configuration strictly, fills defaults, resolves secrets
// and validates; errors name the field and wrap config.ErrInvalid.
func Parse(r io.Reader, log *slog.Logger) (*Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	c := &Config{DeadLetterStream: "COMET_DLQ"}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %s", config.ErrInvalid, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if err := c.validate(log); err != nil {
		return nil, err
	}
	return c, nil
}

// Load parses the file at path.
func Load(path string, log *slog.Logger) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", config.ErrInvalid, err)
	}
	defer f.Close()
	c, err := Parse(f, log)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func (c *Config) validate(log *slog.Logger) error {
	if c.DeadLetterStream == "" || strings.ContainsAny(c.DeadLetterStream, ". *>") {
		return fieldErr("dead_letter_stream", "%q is not a stream name", c.DeadLetterStream)
	}
	for i, cidr := range c.AllowPrivate {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			return fieldErr(fmt.Sprintf("allow_private[%d]", i), "%q is not a CIDR", cidr)
		}
		c.allowed = append(c.allowed, n)
	}
	if len(c.Endpoints) == 0 {
		return fieldErr("endpoints", "at least one endpoint is required")
	}
	names := map[string]bool{}
	for i := range c.Endpoints {
		e := &c.Endpoints[i]
		at := fmt.Sprintf("endpoints[%d]", i)
		if !event.NameRE.MatchString(e.Name) {
			return fieldErr(at+".name", "%q must match [a-z0-9_-]+", e.Name)
		}
		if names[e.Name] {
			return fieldErr(at+".name", "%q is used twice", e.Name)
		}
		names[e.Name] = true
		u, err := url.Parse(e.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fieldErr(at+".url", "%q is not an http(s) URL", e.URL)
		}
		if err := e.resolveSecrets(at, log); err != nil {
			return err
		}
		for j, t := range e.Types {
			if !slices.Contains(allTypes, t) {
				return fieldErr(fmt.Sprintf("%s.types[%d]", at, j), "%q is not an event type", t)
			}
		}
		for j, r := range e.Reports {
			if !event.NameRE.MatchString(r) {
				return fieldErr(fmt.Sprintf("%s.reports[%d]", at, j), "%q is not a report name", r)
			}
		}
		if e.Timeout == 0 {
			e.Timeout = 15 * time.Second
		}
		if e.Timeout < 0 {
			return fieldErr(at+".timeout", "must be positive")
		}
		if e.RateLimit < 0 {
			return fieldErr(at+".rate_limit", "must not be negative")
		}
		if e.Concurrency == 0 {
			e.Concurrency = 4
		}
		if e.Concurrency < 0 || e.Concurrency > 1000 {
			return fieldErr(at+".concurrency", "%d must be between 1 and 1000", e.Concurrency)
		}
		if e.Retry == nil {
			e.Retry = DefaultRetry
		}
		for j, d := range e.Retry {
			if d <= 0 {
				return fieldErr(fmt.Sprintf("%s.retry[%d]", at, j), "must be positive")
			}
		}
	}
	return nil
}

// resolveSecrets gathers the endpoint's secrets and decodes them.
func (e *Endpoint) resolveSecrets(at string, log *slog.Logger) error {
	secrets := slices.Clone(e.Secrets)
	field := at + ".secrets"
	if len(e.Secrets) > 0 {
		log.Warn("webhook secrets written inline in the configuration; prefer secrets_env or secrets_file", "field", field)
	}
	if e.SecretsEnv != "" {
		field = at + ".secrets_env"
		v := os.Getenv(e.SecretsEnv)
		if v == "" {
			return fieldErr(field, "environment variable %s is not set", e.SecretsEnv)
		}
		secrets = append(secrets, strings.Split(v, ",")...)
	}
	if e.SecretsFile != "" {
		field = at + ".secrets_file"
		v, err := config.ReadSecretFile(field, e.SecretsFile, log)
		if err != nil {
			return err
		}
		secrets = append(secrets, strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '\n' || r == ' ' })...)
	}
	if len(secrets) == 0 {
		return fieldErr(at+".secrets", "at least one secret is required (secrets, secrets_env or secrets_file)")
	}
	for i, s := range secrets {
		key, err := DecodeSecret(strings.TrimSpace(s))
		if err != nil {
			return fieldErr(fmt.Sprintf("%s[%d]", field, i), "%v", err)
		}
		e.keys = append(e.keys, key)
	}
	return nil
}

// DecodeSecret returns the key of a "whsec_<base64>" secret.
func DecodeSecret(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return nil, errors.New("a secret starts with whsec_")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) < 16 {
		return nil, errors.New("the part after whsec_ must be base64 of at least 16 bytes")
	}
	return key, nil
}

// ops turns the endpoint's types into the consumer's op filter.
func (e *Endpoint) ops() []string {
	var out []string
	for _, t := range e.Types {
		out = append(out, t[strings.LastIndexByte(t, '.')+1:])
	}
	return out
}
