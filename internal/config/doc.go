// Package config loads the producer's YAML configuration (CONTRACT.md
// section 3): strict parsing, defaults, validation errors that name the
// field, and API keys read from the environment or from files.
package config
