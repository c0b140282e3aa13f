package outbound_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/outbound"
)

func TestPublic(t *testing.T) {
	t.Parallel()
	for addr, public := range map[string]bool{
		"93.184.215.14": true, "2606:2800:21f:cb07:6820:80da:af6b:8b2c": true, "8.8.8.8": true,
		"127.0.0.1": false, "127.8.9.10": false, "::1": false, // loopback
		"10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false, "fd00::1": false, // private
		"100.64.0.1": false, "100.127.255.254": false, // carrier-grade NAT
		"169.254.169.254": false, "fe80::1": false, // link-local: cloud metadata
		"0.0.0.0": false, "::": false, // unspecified
		"224.0.0.1": false, "ff02::1": false, // multicast
		"::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false, "::ffff:8.8.8.8": true, // IPv4-mapped
	} {
		require.Equal(t, public, outbound.Public(netip.MustParseAddr(addr)), addr)
	}
}

func TestClient(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)

	t.Run("RefusesLoopback", func(t *testing.T) {
		t.Parallel()
		for _, url := range []string{srv.URL, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)} {
			_, err := outbound.Client(false).Get(url) //nolint:bodyclose // the request is refused: there is no body
			require.ErrorIs(t, err, outbound.ErrForbiddenAddress, url)
		}
	})

	t.Run("AllowsPrivateWhenTold", func(t *testing.T) {
		t.Parallel()
		res, err := outbound.Client(true).Get(srv.URL)
		require.NoError(t, err)
		require.NoError(t, res.Body.Close())
		require.Equal(t, http.StatusNoContent, res.StatusCode)
	})

	t.Run("FollowsNoRedirect", func(t *testing.T) {
		t.Parallel()
		res, err := outbound.Client(true).Get(srv.URL + "/redirect")
		require.NoError(t, err)
		require.NoError(t, res.Body.Close())
		require.Equal(t, http.StatusFound, res.StatusCode, "a 3xx is the answer")
	})
}
