package producer

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/comet"
)

// Config configures a Producer.
type Config struct {
	// Conn is the NATS connection. It should be made with ReconnectBufSize
	// -1, so a publish during a disconnect fails rather than being sent later.
	Conn *nats.Conn
	// Stream and Prefix name the stream and the subject prefix.
	Stream, Prefix string
	// Replicas of the stream and the buckets.
	Replicas int
	// DuplicateWindow of the stream.
	DuplicateWindow time.Duration
	// MaxAge and MaxBytes limit the stream's retention (0: unlimited); Open
	// applies them to an existing stream too. The oldest events are removed
	// beyond them. Recovery needs only the events past a report's
	// checkpoint, and sinks start from the snapshot buckets (never trimmed),
	// but a durable consumer that falls further behind than the limits
	// loses the events trimmed before it read them.
	MaxAge   time.Duration
	MaxBytes int64
	// Reports to poll.
	Reports []ReportConfig
	// MaxInFlight bounds each report's unacknowledged publishes (events
	// and snapshot writes); default 4096.
	MaxInFlight int
	// CheckpointEvery is how many events a pass publishes between
	// checkpoints; default 10000.
	CheckpointEvery int
	// AckTimeout bounds the wait for one acknowledgement; default 30s.
	AckTimeout time.Duration
	// AllowDeletes lists reports whose current hold of deletes Open
	// releases (as ReleaseDeletes does); Open fails with ErrNothingHeld
	// for a report that holds none.
	AllowDeletes []string
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
	// Now is the clock; default time.Now.
	Now func() time.Time
	// LeaseTTL, when set, makes several producers with the same reports
	// share them: each COMET source and user is polled by the holder of its
	// lease, renewed every third of LeaseTTL; publishes are fenced.
	LeaseTTL time.Duration
	// InstanceID names this producer in leases; a restarted producer with
	// the same id takes its leases back at once.
	InstanceID string
	// Progress, when set, is called after each page of a pass (for the
	// terminal's progress line).
	Progress func(report string, pages, lastPage, rows int)
}

// ReportConfig is one report to poll.
type ReportConfig struct {
	Name string
	// Comet configures the report's COMET client; the producer adds its
	// metrics hook. Reports of one source and user share Comet.Limiter.
	Comet comet.Config
	// Key lists the key columns, or ["*"].
	Key               []string
	Interval          time.Duration
	PageSize          int
	MaxDeleteFraction float64
	// Group is the lease the report belongs to: its source and COMET user
	// (reports that share a rate limit). Empty: the report alone.
	Group string
}

func (c *Config) fill() error {
	if c.Conn == nil {
		return errors.New("producer: no NATS connection")
	}
	if c.Stream == "" || c.Prefix == "" {
		return errors.New("producer: stream and prefix are required")
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 2 * time.Minute
	}
	if c.MaxAge < 0 || c.MaxBytes < 0 {
		return fmt.Errorf("producer: stream limits must not be negative (max age %s, max bytes %d)", c.MaxAge, c.MaxBytes)
	}
	if c.MaxAge > 0 && c.MaxAge < c.DuplicateWindow {
		return fmt.Errorf("producer: stream max age %s is shorter than the duplicate window %s", c.MaxAge, c.DuplicateWindow)
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 4096
	}
	if c.CheckpointEvery <= 0 {
		c.CheckpointEvery = 10000
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.LeaseTTL > 0 {
		if c.LeaseTTL < 3*time.Second {
			return fmt.Errorf("producer: lease TTL %s is shorter than 3s", c.LeaseTTL)
		}
		if c.InstanceID == "" {
			return errors.New("producer: leases need an instance id")
		}
	}
	seen := map[string]bool{}
	for _, r := range c.Reports {
		switch {
		case !event.NameRE.MatchString(r.Name):
			return fmt.Errorf("producer: report name %q must match [a-z0-9_-]+", r.Name)
		case seen[r.Name]:
			return fmt.Errorf("producer: report %q configured twice", r.Name)
		case r.Comet.Limiter == nil:
			return fmt.Errorf("producer: report %q has no rate limiter", r.Name)
		case len(r.Key) == 0:
			return fmt.Errorf("producer: report %q has no key", r.Name)
		case r.PageSize < 1 || r.PageSize > comet.MaxPageSize:
			return fmt.Errorf("producer: report %q page size %d", r.Name, r.PageSize)
		case r.Interval <= 0:
			return fmt.Errorf("producer: report %q interval %s", r.Name, r.Interval)
		}
		seen[r.Name] = true
	}
	return nil
}
