package config

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/comet"
	"github.com/cometstream/cometstream/internal/strictyaml"
)

// Config is the producer's configuration file.
type Config struct {
	DataDir string `yaml:"data_dir"`
	// MemoryLimit is the producer's soft memory limit (Go's GOMEMLIMIT),
	// embedded NATS server included: a size such as 720MiB, or "off".
	// Empty means DefaultMemoryLimit. GOMEMLIMIT in the environment wins.
	MemoryLimit string   `yaml:"memory_limit"`
	NATS        NATS     `yaml:"nats"`
	HTTP        HTTP     `yaml:"http"`
	HA          HA       `yaml:"ha"`
	Sources     []Source `yaml:"sources"`

	// draft: reports may lack a key (ParseDraft).
	draft bool
	// memoryLimit is MemoryLimit in bytes, 0 for off.
	memoryLimit ByteSize
	// listenSet records that the file wrote nats.listen (the default does
	// not count): an explicit embedded server wins over $NATS_URL.
	listenSet bool
}

// HA lets several producers with the same configuration share the reports:
// each COMET source and user is polled by the one holding its lease.
type HA struct {
	// LeaseTTL enables leases; a lease is renewed every third of it, and a
	// producer that dies is replaced within it. 0 means a single producer.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// Instance names this producer in the leases; default: the host name
	// and data_dir. A producer restarted with the same name takes its
	// leases back at once.
	Instance string `yaml:"instance"`
}

// NATS configures the connection, or the embedded server when URL is empty.
type NATS struct {
	URL             string        `yaml:"url"`
	Listen          string        `yaml:"listen"`
	Stream          string        `yaml:"stream"`
	SubjectPrefix   string        `yaml:"subject_prefix"`
	Replicas        int           `yaml:"replicas"`
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
	Sync            string        `yaml:"sync"`
	CredentialsFile string        `yaml:"credentials_file"`
	User            string        `yaml:"user"`
	Password        string        `yaml:"password"`
	PasswordEnv     string        `yaml:"password_env"`
	Token           string        `yaml:"token"`
	TokenEnv        string        `yaml:"token_env"`
	NKeyFile        string        `yaml:"nkey_file"`
	TLS             TLS           `yaml:"tls"`
	// Monitor is the embedded server's HTTP monitoring listener, host:port
	// (/varz, /jsz, /connz, /healthz); "" serves none. Like Listen, an
	// address other than loopback needs Embedded.Users.
	Monitor string `yaml:"monitor"`
	// Embedded configures the embedded server: who may connect, and TLS.
	Embedded Embedded `yaml:"embedded"`
	// MaxAge is the stream's retention by age (0: unlimited): events older
	// than it are removed. The snapshot buckets are not trimmed: they are
	// where sinks start from, and the producer's recovery reads only the
	// events past a report's checkpoint. A durable consumer (a webhook
	// endpoint, a sink) that falls further behind loses the events trimmed
	// before it read them.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxBytes is the stream's retention by size, such as 10GiB (empty or
	// 0: unlimited): the oldest events are removed beyond it. What MaxAge
	// says of consumers holds for it too.
	MaxBytes string `yaml:"max_bytes"`

	// maxBytes is MaxBytes in bytes, 0 for unlimited.
	maxBytes ByteSize
}

// MaxBytesValue is the stream's size limit nats.max_bytes sets, in bytes
// (0: unlimited).
func (n NATS) MaxBytesValue() int64 { return int64(n.maxBytes) }

// Embedded configures the embedded NATS server's users and TLS. With no
// users it accepts anyone, and then only on a loopback address.
type Embedded struct {
	Users []EmbeddedUser `yaml:"users"`
	TLS   ServerTLS      `yaml:"tls"`
}

// EmbeddedUser is one account of the embedded server, with a role:
// "producer" (publishes comet.>, owns the stream, buckets and
// bookkeeping), "subscriber" (consumes, acknowledges, reads the snapshot;
// cannot publish events, delete consumers or purge anything) or "admin".
type EmbeddedUser struct {
	Name         string `yaml:"name"`
	PasswordHash string `yaml:"password_hash"` // bcrypt, as nats-server accepts
	PasswordEnv  string `yaml:"password_env"`
	PasswordFile string `yaml:"password_file"`
	NKey         string `yaml:"nkey"` // a public user nkey (U…) instead of a password
	Role         string `yaml:"role"`
	// SystemAccount places an admin in the embedded server's system
	// account, for `nats server info` and `nats server report jetstream`;
	// such a user cannot use the stream or the buckets.
	SystemAccount bool `yaml:"system_account"`
}

// ServerTLS is the embedded server's client-port certificate. With Verify,
// clients must present a certificate signed by CA.
type ServerTLS struct {
	Cert   string `yaml:"cert"`
	Key    string `yaml:"key"`
	CA     string `yaml:"ca"`
	Verify bool   `yaml:"verify"`
}

// Roles of embedded users.
var Roles = []string{"producer", "subscriber", "admin"}

// TLS names certificate files for the NATS connection.
type TLS struct {
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// HTTP configures the operations endpoint.
type HTTP struct {
	Listen string `yaml:"listen"`
	// Pprof also serves Go's profiles under /debug/pprof/ on Listen.
	Pprof bool `yaml:"pprof"`
}

// Source is one COMET installation.
type Source struct {
	Name      string   `yaml:"name"`
	BaseURL   string   `yaml:"base_url"`
	RateLimit float64  `yaml:"rate_limit"`
	Reports   []Report `yaml:"reports"`
	// Timeout bounds one request, body included (COMET can be slow: clients
	// in the wild wait 120s for a page).
	Timeout time.Duration `yaml:"timeout"`
}

// Report is one saved report.
type Report struct {
	Name              string        `yaml:"name"`
	APIKeyEnv         string        `yaml:"api_key_env"`
	APIKeyFile        string        `yaml:"api_key_file"`
	APIKey            string        `yaml:"api_key"` // inline: allowed, with a warning
	User              string        `yaml:"user"`
	Key               []string      `yaml:"key"`
	Interval          time.Duration `yaml:"interval"`
	PageSize          int           `yaml:"page_size"`
	MaxDeleteFraction *float64      `yaml:"max_delete_fraction"`
	// Path is the URL path template below base_url, with {page} and
	// {size}; some deployments put the report template id in it.
	Path string `yaml:"path"`
	// Params are report-specific filters, sent as query parameters.
	Params map[string]string `yaml:"params"`
}

// Defaults of fields a file leaves out.
const (
	DefaultDataDir           = "./data"
	DefaultListen            = "127.0.0.1:4222"
	DefaultStream            = event.DefaultStream
	DefaultSubjectPrefix     = event.DefaultPrefix
	DefaultDuplicateWindow   = 2 * time.Minute
	DefaultHTTPListen        = "127.0.0.1:9464"
	DefaultRateLimit         = 10
	DefaultUser              = "default"
	DefaultInterval          = time.Minute
	DefaultPageSize          = 1000
	DefaultMaxDeleteFraction = 0.5
	DefaultTimeout           = 60 * time.Second
	// DefaultMemoryLimit keeps a first pass of a million rows, producer
	// and embedded server together, under 800 MB (docs/memory.md).
	DefaultMemoryLimit = "720MiB"
	MinInterval        = time.Second
	MaxTimeout         = 30 * time.Minute
)

// DefaultPath is the report path of most deployments.
const DefaultPath = comet.DefaultPath

// Default returns a configuration with every default filled in and no sources.
func Default() *Config {
	return &Config{
		DataDir: DefaultDataDir,
		NATS: NATS{
			Listen:          DefaultListen,
			Stream:          DefaultStream,
			SubjectPrefix:   DefaultSubjectPrefix,
			Replicas:        1,
			DuplicateWindow: DefaultDuplicateWindow,
			Sync:            "default",
		},
		HTTP: HTTP{Listen: DefaultHTTPListen},
	}
}

// FieldError is a validation error naming the offending field.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// ErrInvalid is wrapped by every error Parse and Validate return, so that
// commands can exit with status 2.
var ErrInvalid = errors.New("invalid configuration")

func fieldErr(field, format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrInvalid, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Parse reads YAML strictly (an unknown field is an error), fills defaults
// and validates.
func Parse(r io.Reader) (*Config, error) { return parse(r, false) }

// ParseDraft is Parse for a configuration still being written: a report
// may lack its key, which `inspect` helps to choose.
func ParseDraft(r io.Reader) (*Config, error) { return parse(r, true) }

func parse(r io.Reader, draft bool) (*Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	c := Default()
	if err := strictyaml.Decode(data, c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	c.fillDefaults()
	c.draft = draft
	c.listenSet = listenWritten(data)
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Load parses the file at path.
func Load(path string) (*Config, error) { return load(path, Parse) }

// LoadDraft parses the file at path with ParseDraft.
func LoadDraft(path string) (*Config, error) { return load(path, ParseDraft) }

func load(path string, parse func(io.Reader) (*Config, error)) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	defer f.Close()
	c, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func (c *Config) fillDefaults() {
	for i := range c.Sources {
		s := &c.Sources[i]
		if s.RateLimit == 0 {
			s.RateLimit = DefaultRateLimit
		}
		if s.Timeout == 0 {
			s.Timeout = DefaultTimeout
		}
		for j := range s.Reports {
			r := &s.Reports[j]
			if r.User == "" {
				r.User = DefaultUser
			}
			if r.Interval == 0 {
				r.Interval = DefaultInterval
			}
			if r.PageSize == 0 {
				r.PageSize = DefaultPageSize
			}
			if r.Path == "" {
				r.Path = DefaultPath
			}
			if r.MaxDeleteFraction == nil {
				f := DefaultMaxDeleteFraction
				r.MaxDeleteFraction = &f
			}
		}
	}
}

var streamNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// listenWritten reports whether the document sets nats.listen itself.
// The strict decode has already accepted it, so errors here mean nothing
// new and count as not set.
func listenWritten(data []byte) bool {
	var probe struct {
		NATS struct {
			Listen *string `yaml:"listen"`
		} `yaml:"nats"`
	}
	if err := yaml.Unmarshal(data, &probe); err != nil {
		return false
	}
	return probe.NATS.Listen != nil
}

// ListenSet reports whether the configuration file wrote nats.listen, as
// opposed to taking the default: an embedded server asked for explicitly
// is started even when $NATS_URL is set (nats.url and --nats still win).
func (c *Config) ListenSet() bool { return c.listenSet }

// MemoryLimitBytes is the soft memory limit memory_limit sets, 0 for none.
func (c *Config) MemoryLimitBytes() int64 { return int64(c.memoryLimit) }

// Validate checks every field and returns the first problem, naming the field.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return fieldErr("data_dir", "must not be empty")
	}
	switch ml := strings.TrimSpace(c.MemoryLimit); ml {
	case "off", "0":
		c.memoryLimit = 0
	default:
		if ml == "" {
			ml = DefaultMemoryLimit
		}
		b, err := ParseByteSize(ml)
		if err != nil {
			return fieldErr("memory_limit", "%v (or off)", err)
		}
		if b < 64<<20 {
			return fieldErr("memory_limit", "%s is below 64MiB: the producer could not hold its own index; raise it, or write off", ml)
		}
		c.memoryLimit = b
	}
	n := c.NATS
	if n.URL == "" {
		if _, _, err := net.SplitHostPort(n.Listen); err != nil {
			return fieldErr("nats.listen", "%q is not host:port", n.Listen)
		}
	}
	if !streamNameRE.MatchString(n.Stream) {
		return fieldErr("nats.stream", "%q must match [A-Za-z0-9_-]{1,64}", n.Stream)
	}
	if !event.NameRE.MatchString(n.SubjectPrefix) {
		return fieldErr("nats.subject_prefix", "%q must be one subject token matching [a-z0-9_-]+", n.SubjectPrefix)
	}
	if n.Replicas < 1 || n.Replicas > 5 {
		return fieldErr("nats.replicas", "%d must be between 1 and 5", n.Replicas)
	}
	if n.DuplicateWindow <= 0 {
		return fieldErr("nats.duplicate_window", "%s must be positive", n.DuplicateWindow)
	}
	if n.MaxAge < 0 {
		return fieldErr("nats.max_age", "%s must not be negative (0: unlimited)", n.MaxAge)
	}
	if n.MaxAge > 0 && n.MaxAge < n.DuplicateWindow {
		// JetStream refuses a duplicate window longer than the retention.
		return fieldErr("nats.max_age", "%s is shorter than nats.duplicate_window (%s): keep events at least as long as duplicates are recognised", n.MaxAge, n.DuplicateWindow)
	}
	switch mb := strings.TrimSpace(n.MaxBytes); mb {
	case "", "0":
		c.NATS.maxBytes = 0
	default:
		b, err := ParseByteSize(mb)
		if err != nil {
			return fieldErr("nats.max_bytes", "%v (or 0 for unlimited)", err)
		}
		if b < 1<<20 {
			return fieldErr("nats.max_bytes", "%s is below 1MiB: the stream could not hold one pass's events; raise it, or write 0 for unlimited", mb)
		}
		c.NATS.maxBytes = b
	}
	if n.Sync != "default" && n.Sync != "always" {
		return fieldErr("nats.sync", "%q must be \"default\" or \"always\"", n.Sync)
	}
	if (n.TLS.Cert == "") != (n.TLS.Key == "") {
		return fieldErr("nats.tls", "cert and key go together")
	}
	if err := n.Embedded.validate(); err != nil {
		return err
	}
	if n.Monitor != "" {
		_, port, err := net.SplitHostPort(n.Monitor)
		if p, perr := strconv.Atoi(port); err != nil || perr != nil || p < 0 || p > 65535 {
			return fieldErr("nats.monitor", "%q is not host:port", n.Monitor)
		}
		if n.Monitor == n.Listen && !strings.HasSuffix(n.Monitor, ":0") {
			return fieldErr("nats.monitor", "%q is nats.listen's address too: give the monitoring listener a port of its own", n.Monitor)
		}
	}
	if c.HA.LeaseTTL != 0 && c.HA.LeaseTTL < 3*time.Second {
		return fieldErr("ha.lease_ttl", "%s is shorter than 3s", c.HA.LeaseTTL)
	}
	if c.HTTP.Listen != "" {
		if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
			return fieldErr("http.listen", "%q is not host:port", c.HTTP.Listen)
		}
	}
	if len(c.Sources) == 0 {
		return fieldErr("sources", "at least one source is required")
	}
	reports := map[string]string{}
	sources := map[string]bool{}
	for i, s := range c.Sources {
		at := fmt.Sprintf("sources[%d]", i)
		if err := checkName(at, s.Name); err != nil {
			return err
		}
		if sources[s.Name] {
			return fieldErr(at+".name", "%q is used twice", s.Name)
		}
		sources[s.Name] = true
		u, err := url.Parse(s.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			return fieldErr(at+".base_url", "%q must be an http(s) URL without a query", s.BaseURL)
		}
		if s.RateLimit <= 0 || s.RateLimit > 1000 {
			return fieldErr(at+".rate_limit", "%v must be between 0 and 1000 calls per second", s.RateLimit)
		}
		if s.Timeout <= 0 || s.Timeout > MaxTimeout {
			return fieldErr(at+".timeout", "%s must be positive and at most %s", s.Timeout, MaxTimeout)
		}
		if len(s.Reports) == 0 {
			return fieldErr(at+".reports", "at least one report is required")
		}
		for j, r := range s.Reports {
			at := fmt.Sprintf("%s.reports[%d]", at, j)
			if err := r.validate(at, c.draft); err != nil {
				return err
			}
			if other, dup := reports[r.Name]; dup {
				return fieldErr(at+".name", "%q is already used by %s", r.Name, other)
			}
			reports[r.Name] = at
		}
	}
	return nil
}

// checkName refuses the name of the source or report at at unless it is
// an event.NameRE name: one that subjects and buckets can carry.
func checkName(at, name string) error {
	if !event.NameRE.MatchString(name) {
		return fieldErr(at+".name", "%q must match [a-z0-9_-]+", name)
	}
	return nil
}

func (r Report) validate(at string, draft bool) error {
	if err := checkName(at, r.Name); err != nil {
		return err
	}
	secrets := 0
	for _, s := range []string{r.APIKeyEnv, r.APIKeyFile, r.APIKey} {
		if s != "" {
			secrets++
		}
	}
	if secrets != 1 {
		return fieldErr(at+".api_key_env", "exactly one of api_key_env, api_key_file or api_key is required")
	}
	if r.User == "" {
		return fieldErr(at+".user", "must not be empty")
	}
	if len(r.Key) == 0 && !draft {
		return fieldErr(at+".key", "is required: the column keys that identify a row (run `cometstream inspect` to choose), or [\"*\"]")
	}
	seen := map[string]bool{}
	for k, col := range r.Key {
		if col == "" {
			return fieldErr(fmt.Sprintf("%s.key[%d]", at, k), "must not be empty")
		}
		if col == event.ContentKey && len(r.Key) > 1 {
			return fieldErr(fmt.Sprintf("%s.key[%d]", at, k), "\"*\" must be the only key column")
		}
		if seen[col] {
			return fieldErr(fmt.Sprintf("%s.key[%d]", at, k), "%q is listed twice", col)
		}
		seen[col] = true
	}
	if r.Interval < MinInterval {
		return fieldErr(at+".interval", "%s is shorter than %s", r.Interval, MinInterval)
	}
	if r.PageSize < 1 || r.PageSize > 1000 {
		return fieldErr(at+".page_size", "%d must be between 1 and 1000", r.PageSize)
	}
	if f := *r.MaxDeleteFraction; f < 0 || f > 1 {
		return fieldErr(at+".max_delete_fraction", "%v must be between 0 and 1", f)
	}
	if err := comet.ValidatePath(r.Path); err != nil {
		return fieldErr(at+".path", "%v", err)
	}
	for _, name := range slices.Sorted(maps.Keys(r.Params)) {
		if err := comet.ValidateParams(map[string]string{name: r.Params[name]}); err != nil {
			return fieldErr(fmt.Sprintf("%s.params[%q]", at, name), "%v", err)
		}
	}
	return nil
}

func (e Embedded) validate() error {
	t := e.TLS
	if (t.Cert == "") != (t.Key == "") {
		return fieldErr("nats.embedded.tls", "cert and key go together")
	}
	if t.Verify && t.CA == "" {
		return fieldErr("nats.embedded.tls.ca", "verify needs the CA that signs client certificates")
	}
	names := map[string]bool{}
	for i, u := range e.Users {
		at := fmt.Sprintf("nats.embedded.users[%d]", i)
		if !slices.Contains(Roles, u.Role) {
			return fieldErr(at+".role", "%q must be producer, subscriber or admin", u.Role)
		}
		if u.SystemAccount && u.Role != "admin" {
			return fieldErr(at+".system_account", "only an admin may use the system account, not a %s", u.Role)
		}
		secrets := 0
		for _, s := range []string{u.PasswordHash, u.PasswordEnv, u.PasswordFile, u.NKey} {
			if s != "" {
				secrets++
			}
		}
		if secrets != 1 {
			return fieldErr(at, "exactly one of password_hash, password_env, password_file or nkey is required")
		}
		if u.NKey != "" {
			if !strings.HasPrefix(u.NKey, "U") || len(u.NKey) != 56 {
				return fieldErr(at+".nkey", "must be a public user nkey (56 characters starting with U)")
			}
			continue
		}
		if u.Name == "" {
			return fieldErr(at+".name", "is required for a password user")
		}
		if names[u.Name] {
			return fieldErr(at+".name", "%q is used twice", u.Name)
		}
		names[u.Name] = true
		if u.PasswordHash != "" && !strings.HasPrefix(u.PasswordHash, "$2") {
			return fieldErr(at+".password_hash", "must be a bcrypt hash ($2a$…, e.g. from `nats server passwd`)")
		}
	}
	return nil
}
