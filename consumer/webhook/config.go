package webhook

import (
	"cmp"
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

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/config"
	"github.com/cometstream/cometstream/internal/strictyaml"
)

// Config is the bridge's configuration file.
type Config struct {
	DeadLetterStream string     `yaml:"dead_letter_stream"`
	AllowPrivate     []string   `yaml:"allow_private"`
	Endpoints        []Endpoint `yaml:"endpoints"`

	allowed   []*net.IPNet
	validated bool
}

// Endpoint is one receiver.
type Endpoint struct {
	Name        string          `yaml:"name"`
	URL         string          `yaml:"url"`
	Secrets     []string        `yaml:"secrets"`
	SecretsEnv  string          `yaml:"secrets_env"`
	SecretsFile string          `yaml:"secrets_file"`
	Types       []event.Type    `yaml:"types"`
	Reports     []string        `yaml:"reports"`
	Timeout     time.Duration   `yaml:"timeout"`
	RateLimit   float64         `yaml:"rate_limit"`
	Concurrency int             `yaml:"concurrency"`
	Ordered     bool            `yaml:"ordered"`
	Retry       []time.Duration `yaml:"retry"`
	// Start is where a new endpoint begins, when its consumer does not
	// exist yet: StartNew (the default) or StartAll. An existing consumer
	// keeps its position.
	Start Start `yaml:"start"`

	keys [][]byte // decoded secrets
}

// Start is where a new endpoint's deliveries begin.
type Start string

// Values of Endpoint.Start.
const (
	// StartNew: the events published from the endpoint's first start on.
	StartNew Start = "new"
	// StartAll: every event the stream holds, then the new ones.
	StartAll Start = "all"
)

// DefaultRetry is the schedule of waits before each retry.
var DefaultRetry = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

func fieldErr(field, format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrInvalidConfig, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Parse reads the configuration strictly (an unknown field is an error),
// fills defaults, resolves secrets and validates; errors name the field and
// wrap ErrInvalidConfig. Secrets written inline are accepted with a warning.
func Parse(r io.Reader, log *slog.Logger) (*Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	c := &Config{}
	if err := strictyaml.Decode(data, c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for i, e := range c.Endpoints {
		if len(e.Secrets) > 0 {
			log.Warn("webhook secrets written inline in the configuration; prefer secrets_env or secrets_file", "field", fmt.Sprintf("endpoints[%d].secrets", i))
		}
	}
	if err := c.Validate(log); err != nil {
		return nil, err
	}
	return c, nil
}

// Load parses the file at path.
func Load(path string, log *slog.Logger) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	defer f.Close()
	c, err := Parse(f, log)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// DefaultDeadLetterStream is where exhausted deliveries go unless
// dead_letter_stream says otherwise.
const DefaultDeadLetterStream = "COMET_DLQ"

// Validate fills defaults, resolves the endpoints' secrets (from Secrets,
// SecretsEnv and SecretsFile) and checks every field, as Parse does for a
// file; New calls it, so a Config built in Go gets the same checks. A url
// whose host is a literal address the guard refuses (loopback, private,
// link-local…) and allow_private does not cover is an error; a host name
// is checked when it is dialled. Errors name the field and wrap
// ErrInvalidConfig. log (may be nil) hears about secret files readable by
// others.
func (c *Config) Validate(log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c.allowed, c.validated = nil, false
	c.DeadLetterStream = cmp.Or(c.DeadLetterStream, DefaultDeadLetterStream)
	if strings.ContainsAny(c.DeadLetterStream, ". *>") {
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
		if err := c.literalRefused(at+".url", u.Hostname()); err != nil {
			return err
		}
		if err := e.resolveSecrets(at, log); err != nil {
			return err
		}
		for j, t := range e.Types {
			if !t.Known() {
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
		switch e.Start {
		case "":
			e.Start = StartNew
		case StartNew, StartAll:
		default:
			return fieldErr(at+".start", "%q is neither %s nor %s", e.Start, StartNew, StartAll)
		}
	}
	c.validated = true
	return nil
}

// resolveSecrets gathers the endpoint's secrets and decodes them.
func (e *Endpoint) resolveSecrets(at string, log *slog.Logger) error {
	secrets := slices.Clone(e.Secrets)
	field := at + ".secrets"
	e.keys = nil
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

// filter turns the endpoint's types and reports into the consumer's filter.
func (e *Endpoint) filter() consumer.Filter {
	f := consumer.Filter{Reports: e.Reports}
	for _, t := range e.Types {
		name := string(t)[strings.LastIndexByte(string(t), '.')+1:]
		if t.Row() {
			f.Ops = append(f.Ops, event.Op(name))
		} else {
			f.Kinds = append(f.Kinds, event.ReportKind(name))
		}
	}
	return f
}
