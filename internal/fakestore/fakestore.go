// Package fakestore is a Jinxxy-style creator store for tests and demos: it answers
// GET /licenses/{id} with 200 while a licence exists, 404 once it was removed, 401 for a
// wrong x-api-key, and whatever status a test forces; it counts the requests it receives.
// Tests run it with httptest (New); `tessera fake-store` serves it on an address, where
// /_fake/licenses lets a demo add and remove licences.
package fakestore

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
)

// Server is a fake store. It is safe for concurrent use.
type Server struct {
	apiKey   string
	requests atomic.Int64
	mu       sync.Mutex
	licenses map[string]bool
	forced   int
	hang     chan struct{}
}

// NewServer returns a store that accepts apiKey and knows no licences yet.
func NewServer(apiKey string) *Server {
	return &Server{apiKey: apiKey, licenses: map[string]bool{}}
}

// New starts a store on loopback with httptest, closed when the test ends.
func New(tb interface{ Cleanup(func()) }, apiKey string) (*Server, *httptest.Server) {
	s := NewServer(apiKey)
	srv := httptest.NewServer(s)
	tb.Cleanup(func() { s.Release(); srv.Close() })
	return s, srv
}

// Add makes licences exist.
func (s *Server) Add(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		s.licenses[id] = true
	}
}

// Remove removes licences, as a refund does: the store then answers 404 for them.
func (s *Server) Remove(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		delete(s.licenses, id)
	}
}

// IDs lists the licences that exist, sorted.
func (s *Server) IDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.licenses))
	for id := range s.licenses {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Force makes every licence request answer status (0 returns to normal answers).
func (s *Server) Force(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forced = status
}

// Hang makes licence requests wait without answering until Release or until the client
// gives up: a timeout.
func (s *Server) Hang() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hang == nil {
		s.hang = make(chan struct{})
	}
}

// Release answers hanging requests and stops hanging.
func (s *Server) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hang != nil {
		close(s.hang)
		s.hang = nil
	}
}

// Requests is how many licence requests the store has received.
func (s *Server) Requests() int64 { return s.requests.Load() }

// ServeHTTP answers the store's API and the demo's /_fake endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /licenses/{id}", s.license)
	mux.HandleFunc("GET /v1/licenses/{id}", s.license)
	mux.HandleFunc("GET /_fake/licenses", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"licenses": s.IDs(), "requests": s.Requests()})
	})
	mux.HandleFunc("PUT /_fake/licenses/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.Add(r.PathValue("id"))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /_fake/licenses/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.Remove(r.PathValue("id"))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.ServeHTTP(w, r)
}

func (s *Server) license(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	hang, forced, exists := s.hang, s.forced, s.licenses[r.PathValue("id")]
	s.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
			return
		}
	}
	switch {
	case forced != 0:
		writeJSON(w, forced, map[string]any{"error": http.StatusText(forced)})
	case r.Header.Get("x-api-key") != s.apiKey:
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid API key"})
	case !exists:
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "license not found"})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"id": r.PathValue("id"), "activations": map[string]any{"total_count": 0}})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
