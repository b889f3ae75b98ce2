package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/cometstream/cometstream/consumer/postgres"
	"github.com/cometstream/cometstream/internal/config"
	"github.com/cometstream/cometstream/internal/natsconn"
)

// postgresFlags are the flags naming a PostgreSQL sink's database and
// schema, which sink postgres and verify postgres share.
type postgresFlags struct {
	dsn, schema *string
}

func (p *postgresFlags) register(fs *flag.FlagSet) {
	p.dsn = fs.String("dsn", os.Getenv("COMETSTREAM_POSTGRES_DSN"), "PostgreSQL connection string (env COMETSTREAM_POSTGRES_DSN)")
	p.schema = fs.String("schema", "comet", "schema holding the report tables")
}

// check refuses a missing connection string and a schema name the sink
// cannot use, as usage errors.
func (p *postgresFlags) check() error {
	if *p.dsn == "" {
		return usagef("--dsn is required")
	}
	if !postgres.SchemaRE.MatchString(*p.schema) {
		return usagef("--schema: %q must match %s", *p.schema, postgres.SchemaRE)
	}
	return nil
}

// sqliteFlag is --db, the file of a SQLite sink, which sink sqlite and
// verify sqlite share; help is the flag's.
type sqliteFlag struct {
	help string
	path *string
}

func (s *sqliteFlag) register(fs *flag.FlagSet) {
	s.path = fs.String("db", "", s.help)
}

// check refuses a missing --db as a usage error.
func (s *sqliteFlag) check() error {
	if *s.path == "" {
		return usagef("--db is required")
	}
	return nil
}

// databaseFlags are the flags naming a sink's database: sqliteFlag or
// postgresFlags.
type databaseFlags interface {
	register(fs *flag.FlagSet)
	check() error
}

// databaseCommandFlags are the other flags of a command on a sink's
// database: sinkFlags or verifyFlags. check validates them once parsed and
// returns the logger they ask for.
type databaseCommandFlags interface {
	register(fs *flag.FlagSet)
	check() (*slog.Logger, error)
}

// parseDatabase parses the flags of the command name on a sink's database
// (sink postgres, verify sqlite): f's and db's, db's checked first.
func parseDatabase(name string, f databaseCommandFlags, db databaseFlags, args []string) (*slog.Logger, error) {
	fs := newFlags(name)
	f.register(fs)
	db.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if err := db.check(); err != nil {
		return nil, err
	}
	return f.check()
}

// configFlag is --config, the configuration file produce, plan and
// inspect require.
type configFlag struct{ path *string }

func (c *configFlag) register(fs *flag.FlagSet, help string) {
	c.path = fs.String("config", "", help)
}

// load loads the file --config names, refusing a missing flag as a usage
// error. A draft's reports need no key columns yet (plan, inspect).
func (c *configFlag) load(draft bool) (*config.Config, error) {
	if *c.path == "" {
		return nil, usagef("--config is required")
	}
	if draft {
		return config.LoadDraft(*c.path)
	}
	return config.Load(*c.path)
}

// subcommands are the kinds a command takes as its first argument (sink
// sqlite, verify postgres): usage is printed for --help, need is the usage
// error without a kind, unknown the one for a kind not in run (%q the kind).
type subcommands struct {
	usage, need, unknown string
	run                  map[string]func(context.Context, []string) error
}

func (s subcommands) dispatch(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("%s", s.need)
	}
	if isHelp(args[0]) {
		fmt.Fprintln(os.Stdout, s.usage)
		return errHelp
	}
	if run, ok := s.run[args[0]]; ok {
		return run(ctx, args[1:])
	}
	return usagef(s.unknown, args[0])
}

// configCommand is what produce and plan share: --config, the NATS
// credentials flags and the log flags.
type configCommand struct {
	configFlag
	creds natsconn.Options
	log   logFlags
}

// newConfigCommand returns the flag set of the command name with the
// flags of a configCommand, help saying what --config is.
func newConfigCommand(name, help string) (*flag.FlagSet, *configCommand) {
	fs := newFlags(name)
	c := &configCommand{}
	c.configFlag.register(fs, help)
	c.creds.RegisterAuth(fs)
	c.log.register(fs)
	return fs, c
}

// parse parses args, loads the file --config names (a draft: see load) and
// makes the logger the log flags ask for.
func (c *configCommand) parse(fs *flag.FlagSet, args []string, draft bool) (*config.Config, *slog.Logger, error) {
	if err := parseFlags(fs, args); err != nil {
		return nil, nil, err
	}
	cfg, err := c.load(draft)
	if err != nil {
		return nil, nil, err
	}
	log, err := c.log.logger()
	if err != nil {
		return nil, nil, err
	}
	return cfg, log, nil
}

// inFile names the configuration file in an invalid-configuration error
// found after it loaded (an API key's variable unset, a key file
// unreadable), as the loader's own errors name it.
func inFile(path string, err error) error {
	if err == nil || !errors.Is(err, config.ErrInvalid) || strings.HasPrefix(err.Error(), path+": ") {
		return err
	}
	return fmt.Errorf("%s: %w", path, err)
}
