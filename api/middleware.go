package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
)

// observe is the outermost handler: it gives the request an id (the caller's X-Request-Id
// when it is sane), logs and measures it, answers unmatched routes and wrong methods with
// problem+json, and turns a panic into a 500 problem.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := clock.System{}.Now() // the request's own duration, not the domain clock
		info := &requestInfo{id: r.Header.Get("X-Request-Id"), client: r.RemoteAddr, base: s.cfg.Log}
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			info.client = host
		}
		if !printableASCII(info.id, 128) {
			info.id = uuid.Must(uuid.NewV7()).String()
		}
		w.Header().Set("X-Request-Id", info.id)
		sw := &statusWriter{ResponseWriter: w}
		r = r.WithContext(context.WithValue(r.Context(), requestInfoKey, info))

		level := slog.LevelInfo
		defer func() {
			if p := recover(); p != nil {
				info.logger().ErrorContext(r.Context(), "panic", "panic", p, "stack", string(debug.Stack()))
				if sw.status == 0 {
					writeProblem(sw, newProblem(CodeInternal, "internal error; quote request id "+info.id+" when reporting it"))
				}
			}
			elapsed := time.Since(start)
			s.metrics.observe(info.operation, sw.status, elapsed)
			if info.base.Enabled(r.Context(), level) {
				info.logger().Log(r.Context(), level, "request", "method", r.Method, "path", r.URL.Path,
					"operation", info.operation, "status", sw.status, "duration", elapsed)
			}
		}()

		_, pattern := s.mux.Handler(r)
		if pattern == "" {
			info.operation = "unmatched"
			unmatched(sw, r, s.mux)
			return
		}
		info.operation = pattern // Huma operations replace it with their operation id
		if _, mounted := s.cfg.Mounts[pattern]; mounted && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			level = slog.LevelDebug // River UI polls every 2 seconds while it is open
		}
		next.ServeHTTP(sw, r)
	})
}

// unmatched answers a request no route matches: 404, or 405 with Allow when the path
// exists under other methods, as problem+json rather than the mux's plain text.
func unmatched(w http.ResponseWriter, r *http.Request, mux *http.ServeMux) {
	probe := &statusWriter{ResponseWriter: discardWriter{header: http.Header{}}}
	mux.ServeHTTP(probe, r)
	if allow := probe.Header().Get("Allow"); allow != "" {
		w.Header().Set("Allow", allow)
	}
	if probe.status == http.StatusMethodNotAllowed {
		writeProblem(w, newProblem(CodeMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s", r.Method, r.URL.Path)))
		return
	}
	writeProblem(w, newProblem(CodeNotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)))
}

// writeProblem writes an RFC 9457 problem outside of Huma, with its detail clipped as
// boundErrors clips Huma's (it can echo a client's path).
func writeProblem(w http.ResponseWriter, p *Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	p.Detail = clip(p.Detail, maxErrorDetail)
	_ = json.NewEncoder(w).Encode(p) // a client gone away is nothing to report
}

// printableASCII reports whether s is 1 to max printable ASCII characters without spaces.
func printableASCII(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, c := range s {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// operation records which operation matched, for logs and metrics.
func (s *Server) operation(ctx huma.Context, next func(huma.Context)) {
	requestInfoFrom(ctx.Context()).operation = ctx.Operation().OperationID
	next(ctx)
}

// authenticate admits callers of admin operations with an active API key of their tenant
// and puts the principal, and its tenant with the tenant's clock (s.now), in the context. Missing, malformed, unknown and revoked keys are
// all 401 with the same detail. Operations where the key is optional (buyer operations a
// seller's backend may also call) authenticate a key when one is sent.
func (s *Server) authenticate(ctx huma.Context, next func(huma.Context)) {
	required, optional := adminKeyRule(ctx.Operation())
	if !required && (!optional || ctx.Header("Authorization") == "") {
		next(ctx)
		return
	}
	scheme, secret, _ := strings.Cut(ctx.Header("Authorization"), " ")
	key, err := core.APIKeyAuthenticate(ctx.Context(), s.cfg.DB, strings.TrimSpace(secret))
	if !strings.EqualFold(scheme, "Bearer") {
		err = core.ErrUnauthenticated
	}
	if err != nil {
		ctx.SetHeader("WWW-Authenticate", `Bearer realm="tessera"`)
		s.writeError(ctx, problem(ctx.Context(), err))
		return
	}
	c := withTenant(ctx.Context(), requestTenant{id: key.TenantID, clock: key.TenantClock})
	next(huma.WithContext(ctx, context.WithValue(c, principalKey, principal{tenantID: key.TenantID, keyID: key.ID})))
}

// adminKeyRule tells whether an operation requires the admin key, or accepts it optionally
// (its security lists the key and an empty requirement).
func adminKeyRule(op *huma.Operation) (required, optional bool) {
	var withKey, without bool
	for _, requirement := range op.Security {
		if _, ok := requirement[securityAdminKey]; ok {
			withKey = true
		} else if len(requirement) == 0 {
			without = true
		}
	}
	return withKey && !without, withKey && without
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// discardWriter is a ResponseWriter that keeps headers and drops the body.
type discardWriter struct{ header http.Header }

func (d discardWriter) Header() http.Header         { return d.header }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}
