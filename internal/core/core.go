// Package core holds the transactional steps that more than one caller runs — the API, the
// jobs and the CLI: create a tenant, issue an API key, append to the audit log. Each step
// takes the transaction it runs in and the time from the caller's clock; none commits.
package core

import (
	"github.com/google/uuid"

	"github.com/tessera/tessera/sql"
)

// queries is stateless generated code; every method takes the connection it runs on.
var queries = sql.New()

// NewID returns a new time-ordered id (UUIDv7), the form of every Tessera id.
func NewID() uuid.UUID {
	return uuid.Must(uuid.NewV7())
}
