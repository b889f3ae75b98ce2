package redact

import (
	"net/url"
	"strings"
)

// URL returns s with its password, a user given alone, its query and its
// fragment hidden or dropped. Where s does not parse, or has no scheme
// (host:port, as NATS takes it), everything after the first '?' or '#' and
// before the last '@' of its authority is dropped.
func URL(s string) string {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "://") {
		// host:port, as NATS takes it, or user:password@host:port.
		return cut("//" + s)[2:]
	}
	u, err := url.Parse(s)
	if err != nil {
		return cut(s)
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else {
			u.User = url.User("xxxxx")
		}
	}
	return u.String()
}

// URLs applies URL to each URL of a comma-separated list, the form of
// NATS_URL and --nats.
func URLs(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = URL(p)
	}
	return strings.Join(parts, ",")
}

// cut is URL for text that does not parse as a URL.
func cut(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	if at := strings.LastIndex(s, "@"); at >= 0 {
		if authority := strings.Index(s, "//"); authority >= 0 && authority < at {
			s = s[:authority+2] + s[at+1:]
		}
	}
	return s
}
