package main

import (
	"errors"
	"flag"
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/internal/natsconn"
)

// subscriberFlags are the flags of every command that connects to NATS to
// read or manage the stream (tail, status, allow-deletes, the sinks,
// verify): the connection's and the log's.
type subscriberFlags struct {
	nats natsconn.Options
	log  logFlags
}

func (f *subscriberFlags) register(fs *flag.FlagSet) {
	f.nats.Register(fs)
	f.log.register(fs)
}

// newSubscriberFlags returns the flag set of the command name with the
// subscriber flags.
func newSubscriberFlags(name string) (*flag.FlagSet, *subscriberFlags) {
	fs := newFlags(name)
	f := &subscriberFlags{}
	f.register(fs)
	return fs, f
}

// connect connects to NATS as name (the client name the server shows). A
// missing URL is a usage error; a failure names the URL and where it came
// from.
func (f *subscriberFlags) connect(name string, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	f.nats.Name = name
	nc, err := natsconn.Connect(f.nats, log)
	if errors.Is(err, natsconn.ErrNoURL) {
		return nil, nil, &usageError{err: err}
	}
	if err != nil {
		return nil, nil, withURL(err, f.nats.URL, subscriberURLFrom(f.nats.URL))
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// dial is connect for a command that logs nothing else: with the logger
// the log flags ask for.
func (f *subscriberFlags) dial(name string) (*nats.Conn, jetstream.JetStream, error) {
	log, err := f.log.logger()
	if err != nil {
		return nil, nil, err
	}
	return f.connect(name, log)
}
