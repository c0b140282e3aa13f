package browser_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/browser"
)

// TestRenderRunsScriptsAndSendsHeaders draws a page whose script adds an element only when
// the request carried the header, so the render proves both.
func TestRenderRunsScriptsAndSendsHeaders(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<html><body><script>
			const p = document.createElement("p"); p.id = "drawn"; p.textContent = "` + r.Header.Get("X-Probe") + `";
			document.body.appendChild(p);
		</script></body></html>`))
	}))
	defer srv.Close()

	page := browser.Render(t, srv.URL, browser.Options{Headers: map[string]string{"X-Probe": "hello"}, Ready: "#drawn"})
	require.True(t, strings.Contains(page.HTML, `<p id="drawn">hello</p>`), page.HTML)
	require.NotEmpty(t, page.Screenshot)
	require.Empty(t, page.Failed)
}
