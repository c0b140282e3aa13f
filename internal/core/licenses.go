package core

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/internal/licensekey"
	"github.com/tessera/tessera/sql"
)

// LicenseIssueParams says what licence to issue, and to which customer of TenantID.
type LicenseIssueParams struct {
	TenantID   uuid.UUID
	PolicyID   uuid.UUID
	CustomerID uuid.UUID
	// AddonIDs must each apply to the policy (no allowed_ids, or allowed_ids naming it).
	AddonIDs []uuid.UUID
	// ExpiresAt overrides the computed expiry (see the LicenseIssue query).
	ExpiresAt *time.Time
	// PayInID, when set, is the licence purchase the licence fulfils: the licence is recorded
	// on it (payins.license_id) by the statement that issues it.
	PayInID *uuid.UUID
}

// LicenseIssue issues a licence with its signed key, records its add-ons, audits it and
// emits license.issued. Add-ons that do not exist or do not apply to the policy, and a
// policy or customer the tenant does not have, are ErrInvalid.
func LicenseIssue(ctx context.Context, tx pgx.Tx, st Step, p LicenseIssueParams) (sql.License, error) {
	addonIDs, err := applicableAddons(ctx, tx, sql.AddonListApplicableParams{TenantID: p.TenantID, PolicyID: p.PolicyID, IDs: p.AddonIDs})
	if err != nil {
		return sql.License{}, err
	}
	signer, err := SigningKeyPrivate(ctx, tx, SigningKeyPrivateParams{TenantID: p.TenantID, Box: st.Box})
	if err != nil {
		return sql.License{}, err
	}
	id := NewID()
	row, err := queries.LicenseIssue(ctx, tx, sql.LicenseIssueParams{
		TenantID: p.TenantID, ID: id, PolicyID: p.PolicyID, CustomerID: p.CustomerID, AddonIDs: addonIDs,
		Key: signer.Sign(id), ExpiresAt: p.ExpiresAt, PayInID: p.PayInID, Now: st.Now,
	})
	if errors.Is(err, ErrNotFound) {
		return sql.License{}, fmt.Errorf("%w: policy %s (live) or customer %s not found", ErrInvalid, p.PolicyID, p.CustomerID)
	} else if err != nil {
		return sql.License{}, fmt.Errorf("issue licence: %w", err)
	}
	license := sql.License(row) // the licences row the statement returns, through its CTE
	if len(addonIDs) > 0 {
		if err := queries.LicenseAddonsAttach(ctx, tx, sql.LicenseAddonsAttachParams{TenantID: p.TenantID, LicenseID: id, AddonIDs: addonIDs}); err != nil {
			return sql.License{}, fmt.Errorf("attach add-ons: %w", err)
		}
	}
	return license, Record(ctx, tx, st, Change{TenantID: p.TenantID, Action: "license.issue", SubjectType: "license", SubjectID: id.String(), Event: LicenseIssuedEvent(LicenseFieldsOf(license))})
}

// applicableAddons returns p.IDs sorted and without duplicates after checking that each is
// a live add-on of p.TenantID that applies to policy p.PolicyID; any other is ErrInvalid.
// No add-ons need no query.
func applicableAddons(ctx context.Context, db sql.DBTX, p sql.AddonListApplicableParams) ([]uuid.UUID, error) {
	sorted := sortedIDs(p.IDs)
	if len(sorted) == 0 {
		return sorted, nil
	}
	p.IDs = sorted
	applicable, err := queries.AddonListApplicable(ctx, db, p)
	if err != nil {
		return nil, fmt.Errorf("check add-ons: %w", err)
	}
	for i, id := range sorted {
		if i >= len(applicable) || applicable[i].ID != id {
			return nil, fmt.Errorf("%w: add-on %s does not exist, is archived, or does not apply to policy %s", ErrInvalid, id, p.PolicyID)
		}
	}
	return sorted, nil
}

// LicenseAction is an admin transition of a licence's status.
type LicenseAction string

// The licence transitions; LicenseTransitions says from which statuses each is allowed.
const (
	LicenseSuspend   LicenseAction = "suspend"
	LicenseReinstate LicenseAction = "reinstate"
	LicenseRevoke    LicenseAction = "revoke"
)

// LicenseTransitions is the licence state machine's admin moves: from which statuses, to
// which, and the event it emits (Data makes its payload; Data(LicenseFields{}).EventType()
// names it). Expiry is time-driven (the license.expire_sweep job).
var LicenseTransitions = map[LicenseAction]struct {
	From []sql.LicenseStatus
	To   sql.LicenseStatus
	Data func(LicenseFields) EventData
}{
	LicenseSuspend: {
		From: []sql.LicenseStatus{sql.LicenseStatusActive}, To: sql.LicenseStatusSuspended,
		Data: func(f LicenseFields) EventData { return LicenseSuspendedEvent(f) },
	},
	LicenseReinstate: {
		From: []sql.LicenseStatus{sql.LicenseStatusSuspended}, To: sql.LicenseStatusActive,
		Data: func(f LicenseFields) EventData { return LicenseReinstatedEvent(f) },
	},
	LicenseRevoke: {
		From: []sql.LicenseStatus{sql.LicenseStatusActive, sql.LicenseStatusSuspended, sql.LicenseStatusExpired},
		To:   sql.LicenseStatusRevoked,
		Data: func(f LicenseFields) EventData { return LicenseRevokedEvent(f) },
	},
}

// LicenseTransitionParams is an admin action on licence ID of TenantID.
type LicenseTransitionParams struct {
	TenantID uuid.UUID
	ID       uuid.UUID
	Action   LicenseAction
}

// LicenseTransition applies an admin action to a licence, audits it and emits its event.
// An unknown licence is ErrNotFound; a status that does not allow the action is
// ErrConflict naming the status.
func LicenseTransition(ctx context.Context, tx pgx.Tx, st Step, p LicenseTransitionParams) (sql.License, error) {
	t, ok := LicenseTransitions[p.Action]
	if !ok {
		return sql.License{}, fmt.Errorf("%w: unknown licence action %q", ErrInvalid, p.Action)
	}
	from := make([]string, len(t.From))
	for i, status := range t.From {
		from[i] = string(status)
	}
	license, err := queries.LicenseTransition(ctx, tx, sql.LicenseTransitionParams{
		TenantID: p.TenantID, ID: p.ID, FromStatuses: from, ToStatus: t.To, Now: st.Now,
	})
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			return sql.License{}, fmt.Errorf("%s licence %s: %w", p.Action, p.ID, err)
		}
		current, getErr := queries.LicenseGet(ctx, tx, sql.LicenseGetParams{TenantID: p.TenantID, ID: p.ID})
		if getErr != nil {
			return sql.License{}, fmt.Errorf("licence %s: %w", p.ID, getErr)
		}
		return sql.License{}, fmt.Errorf("%w: licence %s is %s and cannot be %sd", ErrLicenseStatus, p.ID, current.Status, p.Action)
	}
	return license, Record(ctx, tx, st, Change{TenantID: p.TenantID, Action: "license." + string(p.Action), SubjectType: "license", SubjectID: p.ID.String(), Event: t.Data(LicenseFieldsOf(license))})
}

// LicenseExpireSweep expires, across all tenants, up to batch licences whose expiry has
// passed (LicenseExpireDueAllTenants), auditing and emitting license.expired for each. It
// returns how many expired.
func LicenseExpireSweep(ctx context.Context, tx pgx.Tx, st Step, batch int) (int, error) {
	expired, err := queries.LicenseExpireDueAllTenants(ctx, tx, sql.LicenseExpireDueAllTenantsParams{Now: st.Now, Batch: int32(batch)})
	if err != nil {
		return 0, fmt.Errorf("expire licences: %w", err)
	}
	return len(expired), licensesExpired(ctx, tx, st, expired)
}

// licensesExpired audits and emits license.expired for each licence that expired.
func licensesExpired(ctx context.Context, tx pgx.Tx, st Step, expired []sql.License) error {
	for _, l := range expired {
		err := Record(ctx, tx, st, Change{TenantID: l.TenantID, Action: "license.expire", SubjectType: "license", SubjectID: l.ID.String(), Event: LicenseExpiredEvent(LicenseFieldsOf(l))})
		if err != nil {
			return err
		}
	}
	return nil
}

// LicenseByKey finds the licence a key names after checking the key is the one issued for
// it. Malformed, forged, unknown and mismatched keys are all ErrNotFound, alike.
func LicenseByKey(ctx context.Context, db sql.DBTX, key string) (sql.License, error) {
	parsed, err := licensekey.Parse(key)
	if err != nil { //lint:swallow a malformed or forged key must read exactly like an unknown one
		return sql.License{}, fmt.Errorf("%w: licence key", ErrNotFound)
	}
	license, err := queries.LicenseGet(ctx, db, sql.LicenseGetParams{TenantID: parsed.TenantID, ID: parsed.LicenseID})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return sql.License{}, fmt.Errorf("find licence by key: %w", err)
	}
	if !KeyMatches(license.Key, key) {
		return sql.License{}, fmt.Errorf("%w: licence key", ErrNotFound)
	}
	return license, nil
}

// sortedIDs returns ids sorted as Postgres sorts uuids, without duplicates.
func sortedIDs(ids []uuid.UUID) []uuid.UUID {
	sorted := append([]uuid.UUID{}, ids...)
	slices.SortFunc(sorted, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(sorted)
}

// KeyMatches compares a presented licence key with the stored one in constant time.
func KeyMatches(stored, presented string) bool {
	return stored != "" && subtle.ConstantTimeCompare([]byte(stored), []byte(presented)) == 1
}
