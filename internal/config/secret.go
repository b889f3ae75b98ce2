package config

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// ResolveAPIKey resolves a report's API key from the environment, a file, or the
// inline value (which logs a warning: it puts a secret in the file). A file
// readable by group or others also logs a warning. The error names the field
// but never the key.
func (r Report) ResolveAPIKey(field string, log *slog.Logger) (string, error) {
	switch {
	case r.APIKeyEnv != "":
		v := strings.TrimSpace(os.Getenv(r.APIKeyEnv))
		if v == "" {
			return "", fieldErr(field+".api_key_env", "environment variable %s is not set", r.APIKeyEnv)
		}
		return v, nil
	case r.APIKeyFile != "":
		return ReadSecretFile(field+".api_key_file", r.APIKeyFile, log)
	case r.APIKey != "":
		log.Warn("API key written inline in the configuration; prefer api_key_env or api_key_file", "field", field+".api_key")
		return strings.TrimSpace(r.APIKey), nil
	}
	return "", fieldErr(field+".api_key_env", "no API key configured")
}

// ReadSecretFile reads a secret from a file, trimmed of surrounding space,
// warning when the file is readable by group or others.
func ReadSecretFile(field, path string, log *slog.Logger) (string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", fieldErr(field, "%v", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		log.Warn("secret file is readable by others; chmod 600 it", "field", field, "path", path, "mode", info.Mode().Perm().String())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fieldErr(field, "%v", err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fieldErr(field, "file %s is empty", path)
	}
	return v, nil
}

// Secret resolves a value given inline or through an environment variable.
func Secret(field, inline, env string) (string, error) {
	if env != "" {
		v := os.Getenv(env)
		if v == "" {
			return "", fieldErr(field+"_env", "environment variable %s is not set", env)
		}
		return v, nil
	}
	return inline, nil
}

// ReportRef locates a report in the configuration.
type ReportRef struct {
	Source *Source
	Report *Report
	Field  string // e.g. "sources[0].reports[1]"
}

// Reports lists every configured report with its source.
func (c *Config) Reports() []ReportRef {
	var out []ReportRef
	for i := range c.Sources {
		for j := range c.Sources[i].Reports {
			out = append(out, ReportRef{Source: &c.Sources[i], Report: &c.Sources[i].Reports[j], Field: fmt.Sprintf("sources[%d].reports[%d]", i, j)})
		}
	}
	return out
}

// Find returns the named report.
func (c *Config) Find(name string) (ReportRef, bool) {
	for _, r := range c.Reports() {
		if r.Report.Name == name {
			return r, true
		}
	}
	return ReportRef{}, false
}
