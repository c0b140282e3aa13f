package core

import (
	"time"

	"github.com/tessera/tessera/internal/secrets"
)

// Step is what a transactional step needs besides its transaction: the time it happens at,
// who acts, the box that opens sealed secrets, the River client its follow-up jobs go
// through (in the same transaction; it also retries and cancels jobs), and where it notes its domain outcomes for the caller to count
// after the commit (nil: not counted).
type Step struct {
	Now      time.Time
	Actor    Actor
	Box      *secrets.Box
	Jobs     JobClient
	Outcomes *Outcomes
}
