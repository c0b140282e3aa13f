package api

import (
	"errors"
	"fmt"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tessera/tessera/internal/core"
)

// What the admin resources (products, policies, add-ons, customers) share: the slug rule,
// field-level 422s, wording of constraint violations and not-found errors. Their writes,
// audit included, are core steps (internal/core).

// slugPattern is what products, policies and add-ons accept as slugs (the tables' checks).
const slugPattern = `^[a-z0-9][a-z0-9._-]{0,99}$`

// invalid is a 422 problem about one field of the request: detail says what is wrong, and
// the error detail names where (as Huma's own validation errors do, e.g. "body.period_days").
func invalid(location, detail string, value any) huma.StatusError {
	return newProblem(CodeInvalid, detail, &huma.ErrorDetail{Location: location, Message: detail, Value: value})
}

// constraintError rewords a translated database error that names one of the constraints in
// messages, keeping its kind (ErrDuplicate, ErrConflict, ErrInvalid): "conflict: a customer with this
// email already exists" instead of the constraint's name. Other errors pass through.
func constraintError(err error, messages map[string]string) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	msg, ok := messages[pgErr.ConstraintName]
	if !ok {
		return err
	}
	for _, kind := range []error{core.ErrDuplicate, core.ErrConflict, core.ErrInvalid} {
		if errors.Is(err, kind) {
			return fmt.Errorf("%w: %s", kind, msg)
		}
	}
	return err
}

// notFound names what was not found in a translated ErrNotFound; other errors pass through.
func notFound(err error, noun string, id uuid.UUID) error {
	if errors.Is(err, core.ErrNotFound) {
		return fmt.Errorf("%w: %s %s", core.ErrNotFound, noun, id)
	}
	return err
}
