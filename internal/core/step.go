package core

import (
	"time"

	"github.com/tessera/tessera/internal/secrets"
)

// Step is what a transactional step needs besides its transaction: the time it happens at,
// who acts, the box that opens sealed secrets, and the inserter its follow-up jobs go
// through (in the same transaction).
type Step struct {
	Now   time.Time
	Actor Actor
	Box   *secrets.Box
	Jobs  JobInserter
}
