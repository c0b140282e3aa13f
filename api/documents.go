package api

import (
	"net/http"
	"sync"

	"github.com/danielgtaylor/huma/v2"
)

// Downgrade returns doc as an OpenAPI 3.0.3 JSON document, as Huma downgrades it, without the
// webhooks section, which OpenAPI 3.0 does not have (the 3.1 document publishes the events).
func Downgrade(doc *huma.OpenAPI) ([]byte, error) {
	return withoutWebhooks(doc).Downgrade()
}

// withoutWebhooks returns a shallow copy of doc without its webhooks.
func withoutWebhooks(doc *huma.OpenAPI) *huma.OpenAPI {
	without := *doc
	without.Webhooks = nil
	return &without
}

// documents30 answers GET /openapi-3.0.json and /openapi-3.0.yaml with the documents
// Downgrade makes (rendered once), before the mux's routes for them, which Huma registers
// with its own downgrade: webhooks included, an invalid 3.0 document. Other requests go to
// next.
func (s *Server) documents30(next http.Handler) http.Handler {
	doc := s.api.OpenAPI()
	documents := map[string]struct {
		contentType string
		render      func() ([]byte, error)
	}{
		"/openapi-3.0.json": {"application/openapi+json", sync.OnceValues(func() ([]byte, error) { return Downgrade(doc) })},
		"/openapi-3.0.yaml": {"application/openapi+yaml", sync.OnceValues(withoutWebhooks(doc).DowngradeYAML)},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		document, ok := documents[r.URL.Path]
		if !ok || r.Method != http.MethodGet {
			next.ServeHTTP(w, r)
			return
		}
		body, err := document.render()
		if err != nil {
			s.cfg.Log.ErrorContext(r.Context(), "render OpenAPI 3.0 document", "error", err)
			writeProblem(w, newProblem(CodeInternal, "the OpenAPI 3.0 document could not be rendered"))
			return
		}
		w.Header().Set("Content-Type", document.contentType)
		_, _ = w.Write(body) // a client gone away is nothing to report
	})
}
