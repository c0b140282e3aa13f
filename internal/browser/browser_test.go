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

// TestRenderSignsInOnce serves a page and the data its script fetches only to a request
// signed in with basic auth: the browser asks once, for the page, and sends the kept
// credentials with the script's request.
func TestRenderSignsInOnce(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, password, ok := r.BasicAuth(); !ok || user != "ann" || password != "secret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "sign in", http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/app/data" {
			_, _ = w.Write([]byte("signed in"))
			return
		}
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<html><body><script>
			fetch("/app/data").then(r => r.text()).then(text => {
				const p = document.createElement("p"); p.id = "drawn"; p.textContent = text;
				document.body.appendChild(p);
			});
		</script></body></html>`))
	}))
	defer srv.Close()

	page := browser.Render(t, srv.URL+"/app/", browser.Options{SignIn: &browser.Credentials{User: "ann", Password: "secret"}, Ready: "#drawn"})
	require.Contains(t, page.HTML, `<p id="drawn">signed in</p>`)
	require.Equal(t, []string{srv.URL + "/app/"}, page.SignIns)
	require.Empty(t, page.Failed)
}
