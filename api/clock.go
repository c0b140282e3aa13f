package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/internal/core"
)

// requestTenant is the tenant a request acts for, with its clock: nil for a live tenant, the
// instant a sandbox tenant's clock stands at.
type requestTenant struct {
	id    uuid.UUID
	clock *time.Time
}

// now is the one place that decides a request's time: the clock of a sandbox tenant the
// request acts for (found with its key by authenticate, or with its tenant by resolveBuyer),
// else the server's clock — a live tenant's requests, and those that name no tenant, run on
// real time.
func (s *Server) now(ctx context.Context) time.Time {
	if t, ok := ctx.Value(tenantKey).(requestTenant); ok && t.clock != nil {
		return *t.clock
	}
	return s.cfg.Clock.Now()
}

// withTenant returns ctx acting for tenant t, whose clock s.now reads.
func withTenant(ctx context.Context, t requestTenant) context.Context {
	return context.WithValue(ctx, tenantKey, t)
}

// resolveBuyer finds, before the handler runs, the tenant a buyer operation's request names
// (its buyerTenant, from its path and body) and the tenant's clock, and puts them in the
// context: the request's time (s.now) and its Idempotency-Key scope follow from it. An
// authenticated request acts for its key's tenant instead. A request that names no tenant
// runs on, and is refused by its handler, as before.
func (s *Server) resolveBuyer(ctx huma.Context, next func(huma.Context)) {
	tenantOf, ok := ctx.Operation().Metadata[metadataBuyerTenant].(buyerTenant)
	if _, admin := principalFrom(ctx.Context()); !ok || admin {
		next(ctx)
		return
	}
	screened, ok := ctx.(*screenedContext)
	if !ok {
		s.writeError(ctx, problem(ctx.Context(), errors.New("resolveBuyer must run after screenBody, which reads the body")))
		return
	}
	tenant, err := tenantOf(ctx, screened.body)
	switch {
	case errors.Is(err, core.ErrNotFound):
		next(ctx)
	case err != nil:
		s.writeError(ctx, problem(ctx.Context(), fmt.Errorf("find the tenant of a buyer request: %w", err)))
	default:
		inner := huma.WithContext(screened.humaContext, withTenant(ctx.Context(), tenant))
		next(&screenedContext{humaContext: inner, body: screened.body})
	}
}
