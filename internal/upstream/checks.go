package upstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/sql"
)

// Target is a licence picked for a check, with what the check needs.
type Target = sql.UpstreamLicenseForCheckRow

// RecordCheckParams is the answer to one check of a licence.
type RecordCheckParams struct {
	// Target is the licence checked.
	Target Target
	// Result is the store's answer.
	Result Result
	// Backoff is how long a licence whose check failed (OutcomeError) is held back.
	Backoff time.Duration
}

// RecordCheck records one check of p.Target in tx (SPEC 5):
//   - exists: the licence is not eligible again for the minimum interval;
//   - gone: the licence is marked gone once, its owner's aggregates move it from unrevoked
//     to revoked, license.upstream_revoked is emitted (with licence, owner and store ids)
//     and, when the store says so, the licence is revoked, all in tx; a licence already
//     known gone records the check and changes nothing else, so a retried job emits nothing;
//   - error: the licence is held back for p.Backoff only; its last answered check stays.
func RecordCheck(ctx context.Context, tx pgx.Tx, st core.Step, p RecordCheckParams) error {
	target, res := p.Target, p.Result
	key := sql.UpstreamLicenseMarkExistsParams{Now: st.Now, TenantID: target.TenantID, LicenseID: target.LicenseID}
	var status *int32
	if res.Status != 0 {
		s := int32(res.Status)
		status = &s
	}
	var errText *string
	if res.Err != "" {
		errText = &res.Err
	}
	switch res.Outcome {
	case OutcomeExists:
		if err := queries.UpstreamLicenseMarkExists(ctx, tx, key); err != nil {
			return fmt.Errorf("mark licence %s checked: %w", target.LicenseID, err)
		}
	case OutcomeError:
		err := queries.UpstreamLicenseMarkError(ctx, tx, sql.UpstreamLicenseMarkErrorParams{
			Now: st.Now, BackoffSeconds: p.Backoff.Seconds(), TenantID: target.TenantID, LicenseID: target.LicenseID,
		})
		if err != nil {
			return fmt.Errorf("hold licence %s back after an error: %w", target.LicenseID, err)
		}
	case OutcomeGone:
		if err := markGone(ctx, tx, st, target, res); err != nil {
			return err
		}
	default:
		return fmt.Errorf("record check of licence %s: unknown outcome %q", target.LicenseID, res.Outcome)
	}
	// Recorded last: its foreign key locks the licence's check state, which a gone licence's
	// owner aggregates must be locked before (UpstreamOwnerStatsLock).
	err := queries.UpstreamCheckCreate(ctx, tx, sql.UpstreamCheckCreateParams{
		TenantID: target.TenantID, ID: core.NewID(), LicenseID: target.LicenseID, StoreID: target.StoreID, Now: st.Now,
		Outcome: sql.UpstreamCheckOutcome(res.Outcome), UpstreamStatus: status, Error: errText,
	})
	if err != nil {
		return fmt.Errorf("record check of licence %s: %w", target.LicenseID, err)
	}
	return nil
}

// markGone records that target is gone: its owner's aggregates are locked first
// (UpstreamOwnerStatsLock), then the licence marked; a re-import that moved the licence to
// another owner in between makes it lock the new owner's and try again.
func markGone(ctx context.Context, tx pgx.Tx, st core.Step, target Target, res Result) error {
	var ul sql.UpstreamLicense
	var err error
	for {
		var owner uuid.UUID
		owner, err = queries.UpstreamOwnerStatsLock(ctx, tx, sql.UpstreamOwnerStatsLockParams{TenantID: target.TenantID, LicenseID: target.LicenseID})
		if errors.Is(err, core.ErrNotFound) {
			return nil // already known gone: emitted then
		} else if err != nil {
			return fmt.Errorf("lock the owner's aggregates of licence %s: %w", target.LicenseID, err)
		}
		ul, err = queries.UpstreamLicenseMarkGone(ctx, tx, sql.UpstreamLicenseMarkGoneParams{
			Now: st.Now, TenantID: target.TenantID, LicenseID: target.LicenseID, CustomerID: owner,
		})
		if err == nil {
			break
		} else if !errors.Is(err, core.ErrNotFound) {
			return fmt.Errorf("mark licence %s gone: %w", target.LicenseID, err)
		}
	}
	held := max(0, int64(st.Now.Sub(ul.AcquiredAt)/time.Second))
	now := st.Now
	err = ownerStatsAdd(ctx, tx, ownerStatsDelta{TenantID: ul.TenantID, CustomerID: ul.CustomerID,
		Revoked: 1, RevokedAt: &now, RevokedSeconds: held, Unrevoked: -1, StartSum: -ul.AcquiredAt.Unix(),
	})
	if err != nil {
		return err
	}
	data := core.LicenseUpstreamRevokedEvent{
		LicenseID: ul.LicenseID, CustomerID: ul.CustomerID, StoreID: ul.StoreID,
		ExternalLicenseID: target.ExternalLicenseID, UpstreamStatus: res.Status, DetectedAt: st.Now,
	}
	err = core.Record(ctx, tx, st, core.Change{TenantID: ul.TenantID, Action: "license.upstream_revoke", SubjectType: "license", SubjectID: ul.LicenseID.String(), Event: data})
	if err != nil {
		return err
	}
	if !target.RevokeOnGone {
		return nil
	}
	_, err = core.LicenseTransition(ctx, tx, st, core.LicenseTransitionParams{TenantID: ul.TenantID, ID: ul.LicenseID, Action: core.LicenseRevoke})
	if errors.Is(err, core.ErrConflict) {
		return nil // already revoked
	}
	return err
}

// CheckTarget reads the check target of licence p.LicenseID of p.TenantID.
func CheckTarget(ctx context.Context, db sql.DBTX, p sql.UpstreamLicenseForCheckParams) (Target, error) {
	t, err := queries.UpstreamLicenseForCheck(ctx, db, p)
	if err != nil {
		return Target{}, fmt.Errorf("read licence %s for a check: %w", p.LicenseID, err)
	}
	return t, nil
}
