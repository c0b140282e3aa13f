package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tessera/tessera/internal/core"
)

// problem maps an error from a handler to an RFC 9457 problem. Domain errors carry their
// message to the client; anything else is logged with the request id and answered with a
// plain 500, never the error's text. It is the one place errors become HTTP statuses.
func problem(ctx context.Context, err error) huma.StatusError {
	var status huma.StatusError
	switch {
	case errors.As(err, &status):
		return status
	case errors.Is(err, core.ErrNotFound):
		return huma.Error404NotFound(err.Error())
	case errors.Is(err, core.ErrConflict):
		return huma.Error409Conflict(err.Error())
	case errors.Is(err, core.ErrRefused):
		return huma.Error400BadRequest(err.Error())
	case errors.Is(err, core.ErrInvalid):
		return huma.Error422UnprocessableEntity(err.Error())
	case errors.Is(err, core.ErrUnauthenticated):
		return huma.Error401Unauthorized("missing, unknown or revoked API key")
	case errors.Is(err, context.Canceled):
		return huma.NewError(499, "the client closed the request")
	}
	info := requestInfoFrom(ctx)
	info.log.ErrorContext(ctx, "request failed", "error", err)
	return huma.NewError(http.StatusInternalServerError, "internal error; quote request id "+info.id+" when reporting it")
}

// writeError writes a problem from middleware, where there is no handler to return it.
func (s *Server) writeError(ctx huma.Context, err huma.StatusError) {
	ctx.SetHeader("Content-Type", "application/problem+json")
	ctx.SetStatus(err.GetStatus())
	if werr := s.api.Marshal(ctx.BodyWriter(), "application/json", err); werr != nil {
		requestInfoFrom(ctx.Context()).log.WarnContext(ctx.Context(), "write problem", "error", werr)
	}
}
