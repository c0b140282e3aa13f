package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"
)

const (
	// riverUIPrefix is where serve mounts River UI: its pages, assets and API.
	riverUIPrefix = "/riverui"
	// operatorRealm is the HTTP basic-auth realm operators sign in to.
	operatorRealm = "Tessera operators"
	// operatorPasswordMin is the shortest operator password accepted: sign-in is not rate
	// limited, so the password alone must resist guessing.
	operatorPasswordMin = 16
)

// operatorProblems validates the operator sign-in settings.
func (cfg Config) operatorProblems() []error {
	var problems []error
	if strings.ContainsAny(cfg.OperatorUser, ":\r\n") { // basic auth ends the user at its first colon
		problems = append(problems, fmt.Errorf("TESSERA_OPERATOR_USER must not contain a colon or line break, not %q", cfg.OperatorUser))
	}
	if cfg.OperatorPassword != "" && len(cfg.OperatorPassword) < operatorPasswordMin {
		problems = append(problems, fmt.Errorf("TESSERA_OPERATOR_PASSWORD must be at least %d characters (generate one with `openssl rand -base64 24`)", operatorPasswordMin))
	}
	return problems
}

// riverUIMounts returns River UI on client, behind operator sign-in, by mux pattern for
// api.Config.Mounts; none when no operator password is configured. River UI's background
// work (counting jobs by state) runs until ctx ends.
func riverUIMounts(ctx context.Context, cfg Config, client *river.Client[pgx.Tx], log *slog.Logger) (map[string]http.Handler, error) {
	if cfg.OperatorPassword == "" {
		return nil, nil
	}
	ui, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, &riverui.EndpointsOpts[pgx.Tx]{}),
		Logger:    log,
		Prefix:    riverUIPrefix,
		// Job args carry ids only (internal/jobargs): show them, so that an operator sees
		// which tenant and object a job works on.
		JobListHideArgsByDefault: false,
	})
	if err != nil {
		return nil, fmt.Errorf("create river ui: %w", err)
	}
	if err := ui.Start(ctx); err != nil {
		return nil, fmt.Errorf("start river ui: %w", err)
	}
	// Browsers send cached basic-auth credentials with requests other sites make, so
	// cross-origin writes (a form posting to /riverui/api/jobs/cancel) are refused.
	h := requireOperator(cfg.OperatorUser, cfg.OperatorPassword, http.NewCrossOriginProtection().Handler(ui))
	// River UI redirects the bare prefix to prefix/, once signed in.
	return map[string]http.Handler{riverUIPrefix: h, riverUIPrefix + "/": h}, nil
}

// requireOperator serves next only to requests signed in with HTTP basic auth as user and
// password, and answers the others 401 with a challenge for operatorRealm. Both are
// compared in constant time, through their hashes so that not even their lengths show.
func requireOperator(user, password string, next http.Handler) http.Handler {
	wantUser, wantPassword := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	challenge := fmt.Sprintf("Basic realm=%q, charset=\"UTF-8\"", operatorRealm)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotUser, gotPassword, ok := r.BasicAuth()
		hashUser, hashPassword := sha256.Sum256([]byte(gotUser)), sha256.Sum256([]byte(gotPassword))
		match := subtle.ConstantTimeCompare(hashUser[:], wantUser[:]) & subtle.ConstantTimeCompare(hashPassword[:], wantPassword[:])
		if !ok || match != 1 {
			w.Header().Set("WWW-Authenticate", challenge)
			http.Error(w, "sign in as a Tessera operator: TESSERA_OPERATOR_USER and TESSERA_OPERATOR_PASSWORD", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
