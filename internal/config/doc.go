// Package config loads the producer's YAML configuration (docs/configuration.md): strict parsing, defaults, validation errors that name the
// field, and API keys read from the environment or from files.
package config
