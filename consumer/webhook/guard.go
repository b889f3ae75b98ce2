package webhook

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// blockedRange is a range the guard refuses, with what it is.
type blockedRange struct {
	prefix netip.Prefix
	kind   string
}

// blocked are the ranges an endpoint may not reach unless allow-listed:
// loopback, private, link-local (cloud metadata at 169.254.169.254 among
// them), shared, unspecified and multicast addresses.
var blocked = []blockedRange{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "reserved"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("fc00::/7"), "private"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// refused says whether the guard refuses ip, and the range it is in: the
// one classification of addresses, used at dial time (control) and for the
// literal addresses of the configuration (Validate).
func (c *Config) refused(ip netip.Addr) (blockedRange, bool) {
	ip = ip.Unmap().WithZone("")
	for _, n := range c.allowed {
		if n.Contains(ip.AsSlice()) {
			return blockedRange{}, false
		}
	}
	for _, b := range blocked {
		if b.prefix.Contains(ip) {
			return b, true
		}
	}
	return blockedRange{}, false
}

// control is a net.Dialer Control function: it runs after name resolution,
// on the address actually being dialled, so a DNS answer cannot smuggle a
// forbidden address past a check made earlier.
func (c *Config) control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return err
	}
	if b, ok := c.refused(ip); ok {
		return fmt.Errorf("%w: %s is in %s, a %s range (allow it with allow_private)", ErrForbiddenAddress, ip.Unmap().WithZone(""), b.prefix, b.kind)
	}
	return nil
}

// literalRefused checks a URL host written as an address; a host name is
// left to the dial-time guard, since its addresses can change.
func (c *Config) literalRefused(field, host string) error {
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return nil
	}
	b, ok := c.refused(ip)
	if !ok {
		return nil
	}
	ip = ip.Unmap().WithZone("")
	return fieldErr(field, "%s is a %s address (in %s), which the address guard refuses; add it to allow_private to deliver there (allow_private: [%s])",
		ip, b.kind, b.prefix, netip.PrefixFrom(ip, ip.BitLen()))
}
