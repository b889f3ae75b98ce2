package config

import (
	"net/url"
	"slices"
	"strings"
)

// Lane is the COMET user a report's requests count against: one COMET
// installation (the host of base_url) and one user. COMET limits calls per
// user, so sources that reach the same host as the same user share a lane,
// whatever they are called.
type Lane struct {
	// Source is the first source in the file with this host and user: the
	// lane's name is Source/User.
	Source, User string
	// RateLimit is the lowest rate_limit of the lane's sources.
	RateLimit float64
	// Sources are the sources whose reports use the lane, in file order.
	Sources []string
}

// Name is the lane's name, "source/user".
func (l Lane) Name() string { return l.Source + "/" + l.User }

// Lanes returns each report's lane, by report name.
func (c *Config) Lanes() map[string]Lane {
	type id struct{ host, user string }
	lanes := map[id]*Lane{}
	byReport := map[string]*Lane{}
	for _, ref := range c.Reports() {
		k := id{host: cometHost(ref.Source.BaseURL), user: ref.Report.User}
		l := lanes[k]
		if l == nil {
			l = &Lane{Source: ref.Source.Name, User: ref.Report.User, RateLimit: ref.Source.RateLimit}
			lanes[k] = l
		}
		if !slices.Contains(l.Sources, ref.Source.Name) {
			l.Sources = append(l.Sources, ref.Source.Name)
		}
		l.RateLimit = min(l.RateLimit, ref.Source.RateLimit)
		byReport[ref.Report.Name] = l
	}
	out := make(map[string]Lane, len(byReport))
	for name, l := range byReport {
		out[name] = *l
	}
	return out
}

// cometHost is the installation a base_url names: its host and port, in
// lower case (the default port written or not).
func cometHost(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return host + ":" + port
}
