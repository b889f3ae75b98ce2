package natsconn

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cometstream/cometstream/internal/redact"
)

// Options says how to reach NATS.
type Options struct {
	URL       string
	Creds     string // credentials file
	NKey      string // nkey seed file
	User      string
	Password  string
	Token     string
	TLSCA     string
	TLSCert   string
	TLSKey    string
	Name      string // connection name, shown by the server
	Publisher bool   // fail publishes while disconnected instead of buffering them
}

// Register adds the connection flags to fs, with defaults from the
// environment (NATS_URL, NATS_CREDS, NATS_NKEY, NATS_USER, NATS_PASSWORD,
// NATS_TOKEN, NATS_CA, NATS_CERT, NATS_KEY).
func (o *Options) Register(fs *flag.FlagSet) {
	fs.StringVar(&o.URL, "nats", os.Getenv("NATS_URL"), "NATS server URL(s), comma-separated (env NATS_URL)")
	o.RegisterAuth(fs)
}

// RegisterAuth adds the credential and TLS flags only.
func (o *Options) RegisterAuth(fs *flag.FlagSet) {
	fs.StringVar(&o.Creds, "creds", os.Getenv("NATS_CREDS"), "NATS credentials file (env NATS_CREDS)")
	fs.StringVar(&o.NKey, "nkey", os.Getenv("NATS_NKEY"), "NATS nkey seed file (env NATS_NKEY)")
	fs.StringVar(&o.User, "user", os.Getenv("NATS_USER"), "NATS user (env NATS_USER)")
	fs.StringVar(&o.Password, "password", os.Getenv("NATS_PASSWORD"), "NATS password (env NATS_PASSWORD)")
	fs.StringVar(&o.Token, "token", os.Getenv("NATS_TOKEN"), "NATS token (env NATS_TOKEN)")
	fs.StringVar(&o.TLSCA, "tls-ca", os.Getenv("NATS_CA"), "CA certificate file (env NATS_CA)")
	fs.StringVar(&o.TLSCert, "tls-cert", os.Getenv("NATS_CERT"), "client certificate file (env NATS_CERT)")
	fs.StringVar(&o.TLSKey, "tls-key", os.Getenv("NATS_KEY"), "client key file (env NATS_KEY)")
}

// Override replaces the credentials and TLS files of o with those set in
// with (the command line over the configuration file).
func (o *Options) Override(with Options) {
	if with.Creds != "" || with.NKey != "" || with.User != "" || with.Token != "" {
		o.Creds, o.NKey, o.User, o.Password, o.Token = with.Creds, with.NKey, with.User, with.Password, with.Token
	}
	if with.TLSCA != "" {
		o.TLSCA = with.TLSCA
	}
	if with.TLSCert != "" {
		o.TLSCert, o.TLSKey = with.TLSCert, with.TLSKey
	}
}

// ErrNoURL is returned when no server address is given.
var ErrNoURL = errors.New("no NATS URL: pass --nats or set NATS_URL")

// Connect dials NATS and keeps reconnecting forever after a disconnect.
func Connect(o Options, log *slog.Logger) (*nats.Conn, error) {
	if o.URL == "" {
		return nil, ErrNoURL
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("reconnected to NATS", "url", redact.URLs(c.ConnectedUrl())) }),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"$JS.API.CONSUMER.DELETE.`) {
				// Deleting a consumer read to its end is tidiness, and a
				// user with the subscriber role may not: the server removes
				// the consumer once it is inactive.
				log.Debug("the server refused to delete a consumer this process is done with; it removes it once inactive", "err", err)
				return
			}
			log.Error("NATS error", "subject", subj, "err", err)
		}),
	}
	if o.Publisher {
		// A publish made while disconnected must fail now, not be replayed
		// later behind our back: the producer decides what to resend.
		opts = append(opts, nats.ReconnectBufSize(-1))
	}
	switch {
	case o.Creds != "":
		opts = append(opts, nats.UserCredentials(o.Creds))
	case o.NKey != "":
		opt, err := nats.NkeyOptionFromSeed(o.NKey)
		if err != nil {
			return nil, fmt.Errorf("--nkey: %w", err)
		}
		opts = append(opts, opt)
	}
	if o.User != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if o.TLSCert != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		// A URL that does not parse comes back quoted whole, password
		// and all.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = fmt.Errorf("%s %q: %w", ue.Op, redact.URLs(ue.URL), ue.Err)
		}
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	return nc, nil
}

// Shutdown drains nc — pending acks and publishes are flushed, the
// subscriptions are finished — and waits up to timeout for it to close,
// so that whoever stops the server next does not cut the drain short.
func Shutdown(nc *nats.Conn, timeout time.Duration) {
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	deadline := time.Now().Add(timeout)
	for !nc.IsClosed() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	nc.Close()
}

// DeleteRefused explains err from deleting a consumer when it is the
// silence of a server that refused the request: NATS answers a permission
// violation asynchronously (logged at debug, see Connect), and the request
// times out.
func DeleteRefused(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		return fmt.Errorf("%w (no answer from NATS: is this user allowed to delete consumers? the subscriber role is not)", err)
	}
	return err
}
