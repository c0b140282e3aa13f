package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/browser"
)

// docsAssets are the files the /docs page loads.
var docsAssets = []string{"/docs/assets/web-components.min.js", "/docs/assets/styles.min.css", "/docs/assets/docs.css", "/docs/assets/favicon.svg"}

// TestDocsRenderOffline draws /docs in headless Chromium from a real loopback server and
// finds the operations of one tag drawn: the viewer and everything it needs come from
// Tessera itself, under its Content-Security-Policy, with nothing refused or failed.
func TestDocsRenderOffline(t *testing.T) {
	t.Parallel()
	_, srv := setupServer(t)

	page := browser.Render(t, srv.URL+"/docs#/operations/machine-activate", browser.Options{
		Ready:   `[id="sl-toc-/operations/machine-deactivate-admin"]`, // drawn only once the operations are
		Timeout: 3 * time.Minute,                                      // the first draw parses 2 MB of script; CI machines are busy
	})
	require.Empty(t, page.Failed, "requests that failed")
	require.Empty(t, page.Errors, "what the browser refused or reported")
	var summaries []string
	for _, item := range api.Spec().Paths {
		for _, op := range []*huma.Operation{item.Get, item.Post, item.Patch, item.Delete} {
			if op != nil && slices.Contains(op.Tags, "Machines") {
				summaries = append(summaries, op.Summary)
			}
		}
	}
	require.GreaterOrEqual(t, len(summaries), 4)
	for _, s := range summaries {
		require.Contains(t, page.HTML, s, "the sidebar lists every operation of the open tag")
	}
	require.Contains(t, page.HTML, ">Activate this machine on a licence (buyer)</h1>", "the open operation is drawn")
}

// TestDocsContentSecurityPolicy checks that /docs and every asset it loads carry a policy
// that admits Tessera's own origin only, and that the page names nothing elsewhere.
func TestDocsContentSecurityPolicy(t *testing.T) {
	t.Parallel()
	b := setup(t)

	page := b.request(t, http.MethodGet, "/docs", "", "Authorization", "")
	require.Equal(t, http.StatusOK, page.status)
	require.Equal(t, "text/html; charset=utf-8", page.header.Get("Content-Type"))
	require.NotContains(t, string(page.body), "//", "the page loads nothing from another origin")
	for _, asset := range docsAssets {
		require.Contains(t, string(page.body), `"`+asset+`"`)
	}

	for _, path := range append([]string{"/docs"}, docsAssets...) {
		res := b.request(t, http.MethodGet, path, "", "Authorization", "")
		require.Equal(t, http.StatusOK, res.status, path)
		require.NotEmpty(t, res.body, path)
		require.Equal(t, "nosniff", res.header.Get("X-Content-Type-Options"), path)
		csp := res.header.Get("Content-Security-Policy")
		directives := map[string][]string{}
		for _, d := range strings.Split(csp, ";") {
			fields := strings.Fields(d)
			require.NotEmpty(t, fields, "%s: empty directive in %q", path, csp)
			directives[fields[0]] = fields[1:]
		}
		require.Equal(t, []string{"'none'"}, directives["default-src"], path)
		for name, sources := range directives {
			for _, source := range sources {
				ok := source == "'self'" || source == "'none'" || name == "style-src" && source == "'unsafe-inline'" ||
					name == "sandbox" && strings.HasPrefix(source, "allow-")
				require.True(t, ok, "%s: %s admits %s, not only Tessera's own origin", path, name, source)
			}
		}
		for _, name := range []string{"script-src", "style-src", "connect-src", "img-src"} {
			require.Contains(t, directives[name], "'self'", "%s: %s", path, name)
		}
	}
	require.Equal(t, "text/javascript; charset=utf-8", b.request(t, http.MethodGet, docsAssets[0], "").header.Get("Content-Type"))
	require.Equal(t, "text/css; charset=utf-8", b.request(t, http.MethodGet, docsAssets[1], "").header.Get("Content-Type"))

	for _, missing := range []string{"/docs/assets/vendor.sh", "/docs/assets/LICENSE", "/docs/assets/nothing.js"} {
		requireProblem(t, b.request(t, http.MethodGet, missing, ""), http.StatusNotFound)
	}
}
