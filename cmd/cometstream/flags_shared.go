package main

import (
	"flag"
	"os"

	"github.com/cometstream/cometstream/consumer/postgres"
	"github.com/cometstream/cometstream/internal/config"
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
