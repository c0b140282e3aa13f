// Package outbound is how Tessera calls the URLs its tenants choose — webhook endpoints and
// upstream stores — without becoming a way into the network it runs in (server-side request
// forgery): a tenant's URL must not reach the machine's loopback, the cloud's metadata
// service or the private network, unless the operator allows it (development, tests).
package outbound

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrForbiddenAddress means a connection was refused because the address it would reach is
// not public.
var ErrForbiddenAddress = errors.New("outbound: the address is not public")

// sharedAddressSpace is carrier-grade NAT (RFC 6598), private in practice though
// netip.Addr.IsPrivate does not say so.
var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

// Public reports whether addr is an address a tenant's URL may reach: not loopback, private
// (RFC 1918, RFC 4193), carrier-grade NAT, link-local (which includes cloud metadata
// services at 169.254.169.254), unspecified, multicast, or IPv4 reached through an
// IPv4-mapped IPv6 address of one of those.
func Public(addr netip.Addr) bool {
	addr = addr.Unmap()
	return addr.IsValid() && addr.IsGlobalUnicast() && !addr.IsPrivate() && !sharedAddressSpace.Contains(addr)
}

// Client returns the HTTP client for tenants' URLs: a clone of the default transport that
// connects directly (HTTP(S)_PROXY is not used: a proxy would hide where a request goes), follows
// no redirect (a 3xx is an answer, not a new target) and, unless allowPrivate, refuses to
// connect to an address that is not Public. The check runs on the address being dialled,
// after name resolution, so a hostname that resolves — or later re-resolves — to such an
// address is refused too; the request then fails with an error wrapping ErrForbiddenAddress.
func Client(allowPrivate bool) *http.Client {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: %s: %w", ErrForbiddenAddress, address, err)
			}
			if !Public(ap.Addr()) {
				return fmt.Errorf("%w: %s", ErrForbiddenAddress, ap.Addr())
			}
			return nil
		}
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil
	transport.DialContext = dialer.DialContext
	return &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
