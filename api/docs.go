package api

import (
	"embed"
	"io/fs"
	"net/http"
)

// docsAssets is the /docs viewer, served from the binary so that the page works with no
// internet: Stoplight Elements (api/docs/VERSION, Apache-2.0, api/docs/LICENSE), vendored
// by api/docs/vendor.sh, and Tessera's own stylesheet and icon.
//
//go:embed docs/web-components.min.js docs/styles.min.css docs/docs.css docs/favicon.svg
var docsAssets embed.FS

// docsCSP is the Content-Security-Policy of /docs and its assets: everything comes from
// Tessera's own origin ('self'): the page, the viewer's script and stylesheets, the OpenAPI
// document it fetches and the requests of its "Send API Request" panel. No script runs
// inline, and nothing, fonts included, loads from elsewhere. Styles alone also allow
// 'unsafe-inline': Elements inserts <style> blocks (Font Awesome's icons) and renders
// descriptions and code samples as HTML with style attributes, whose text depends on the
// document, so no hash or nonce can list them; without them every icon is drawn as large as
// the page. Inline styles cannot run code.
const docsCSP = "default-src 'none'; base-uri 'none'; connect-src 'self'; form-action 'none'; " +
	"frame-ancestors 'none'; img-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"sandbox allow-same-origin allow-scripts"

// docsPage is the /docs page: Elements drawing /openapi.json.
const docsPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tessera API reference</title>
<link rel="icon" href="/docs/assets/favicon.svg">
<link rel="stylesheet" href="/docs/assets/styles.min.css">
<link rel="stylesheet" href="/docs/assets/docs.css">
<script src="/docs/assets/web-components.min.js"></script>
</head>
<body>
<elements-api apiDescriptionUrl="/openapi.json" router="hash" layout="sidebar" tryItCredentialsPolicy="same-origin"></elements-api>
</body>
</html>
`

// registerDocs serves /docs and its assets from the binary (Huma's own page loads its
// viewer from a CDN, so its DocsPath is off).
func (s *Server) registerDocs() {
	s.mux.HandleFunc("GET /docs", serveDocsPage)
	s.mux.HandleFunc("GET /docs/assets/{file}", serveDocsAsset)
}

// serveDocsPage serves the documentation page, which renders /openapi.json.
func serveDocsPage(w http.ResponseWriter, _ *http.Request) {
	docsHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(docsPage)) // a client gone away is nothing to report
}

// serveDocsAsset serves one of the page's assets embedded in the binary; another name is a
// 404 problem.
func serveDocsAsset(w http.ResponseWriter, r *http.Request) {
	name := "docs/" + r.PathValue("file")
	if _, err := fs.Stat(docsAssets, name); err != nil { //lint:swallow any asset that cannot be read is one the viewer does not have: 404
		writeProblem(w, newProblem(CodeNotFound, "no asset "+r.URL.Path))
		return
	}
	docsHeaders(w)
	w.Header().Set("Cache-Control", "public, max-age=3600")
	http.ServeFileFS(w, r, docsAssets, name)
}

// docsHeaders sets the headers every /docs answer carries.
func docsHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", docsCSP)
	w.Header().Set("X-Content-Type-Options", "nosniff")
}
