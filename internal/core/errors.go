package core

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNotFound means the thing asked for does not exist for the caller's tenant. It never
// says whether it exists for another tenant.
var ErrNotFound = errors.New("not found")

// ErrConflict means the request collides with the current state: a taken unique value, or
// a transition the current state does not allow.
var ErrConflict = errors.New("conflict")

// ErrInvalid means the request breaks a rule of the data (a check constraint, a bad
// reference) that the API's schema could not catch.
var ErrInvalid = errors.New("invalid")

// DBError translates a database error into Tessera's errors: no rows is ErrNotFound,
// unique and exclusion violations are ErrConflict, check, not-null and foreign-key
// violations are ErrInvalid, each naming the constraint. Other errors pass through. It is
// the one place where database errors are interpreted.
func DBError(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch pgErr.Code {
	case "23505", "23P01": // unique_violation, exclusion_violation
		return fmt.Errorf("%w: %s already exists: %w", ErrConflict, pgErr.ConstraintName, err)
	case "23514", "23502", "23503", "22P02": // check, not_null, foreign_key, invalid_text_representation
		return fmt.Errorf("%w: %s: %w", ErrInvalid, constraintOrMessage(pgErr), err)
	}
	return err
}

func constraintOrMessage(pgErr *pgconn.PgError) string {
	if pgErr.ConstraintName != "" {
		return "violates " + pgErr.ConstraintName
	}
	return pgErr.Message
}
