package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tessera/tessera/internal/core"
)

// retryAfterUnavailable is the Retry-After, in seconds, of a 503 answered while the database
// is unreachable: about the time Postgres takes to restart.
const retryAfterUnavailable = 2

// problem maps an error from a handler to an RFC 9457 problem. Domain errors get the code
// of the first of Problems whose Err they are and carry their message to the client, and so
// do database refusals of invalid input, which the data boundary (core.DB) translated into
// core.ErrInvalid before they got here; a database that cannot be reached
// (core.DBUnavailable), or that aborted the request's transaction to break a deadlock with a
// concurrent one (core.DBConflict), is a 503 with Retry-After; anything else is logged with the request
// id and answered with a plain 500, never the error's text. It is the one place errors
// become HTTP statuses.
func problem(ctx context.Context, err error) huma.StatusError {
	var status huma.StatusError
	if errors.As(err, &status) {
		return status
	}
	var field *core.FieldError
	if errors.As(err, &field) {
		return invalid("body."+field.Field, field.Detail, field.Value)
	}
	var fields *core.FieldErrors
	if errors.As(err, &fields) {
		details := make([]error, len(fields.Fields))
		for i, f := range fields.Fields {
			details[i] = &huma.ErrorDetail{Location: "body." + f.Field, Message: f.Detail, Value: f.Value}
		}
		return newProblem(CodeInvalid, fields.Detail, details...)
	}
	for _, p := range Problems() {
		if p.Err != nil && errors.Is(err, p.Err) {
			if p.Code == CodeUnauthenticated {
				return newProblem(p.Code, "missing, unknown or revoked API key")
			}
			return newProblem(p.Code, err.Error())
		}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return newProblem(CodeClientClosedRequest, "the client closed the request")
	case core.DBUnavailable(err):
		requestInfoFrom(ctx).logger().WarnContext(ctx, "database unavailable", "error", err)
		return unavailable("the database is unreachable; retry later")
	case core.DBConflict(err):
		requestInfoFrom(ctx).logger().WarnContext(ctx, "transaction aborted by a conflict with a concurrent one", "error", err)
		return unavailable("the database aborted this request to break a deadlock with a concurrent one; nothing was written; retry")
	}
	info := requestInfoFrom(ctx)
	info.logger().ErrorContext(ctx, "request failed", "error", err)
	return newProblem(CodeInternal, "internal error; quote request id "+info.id+" when reporting it")
}

// unavailableError is a 503 problem with a Retry-After header (Huma sets the headers of an
// error that has them).
type unavailableError struct{ *Problem }

// GetHeaders returns the Retry-After header.
func (unavailableError) GetHeaders() http.Header {
	return http.Header{"Retry-After": {strconv.Itoa(retryAfterUnavailable)}}
}

// unavailable returns a 503 problem with Retry-After and detail.
func unavailable(detail string) huma.StatusError {
	return unavailableError{newProblem(CodeUnavailable, detail)}
}

// writeError writes a problem from middleware, where there is no handler to return it, with
// the headers the problem carries.
func (s *Server) writeError(ctx huma.Context, err huma.StatusError) {
	var withHeaders huma.HeadersError
	if errors.As(err, &withHeaders) {
		for name, values := range withHeaders.GetHeaders() {
			for _, v := range values {
				ctx.AppendHeader(name, v)
			}
		}
	}
	ctx.SetHeader("Content-Type", "application/problem+json")
	ctx.SetStatus(err.GetStatus())
	if werr := s.api.Marshal(ctx.BodyWriter(), "application/json", err); werr != nil {
		requestInfoFrom(ctx.Context()).logger().WarnContext(ctx.Context(), "write problem", "error", werr)
	}
}
