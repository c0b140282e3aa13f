package core

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/sql"
)

// MachineActivateParams is a machine to activate on licence LicenseID of TenantID.
type MachineActivateParams struct {
	TenantID  uuid.UUID
	LicenseID uuid.UUID
	// Fingerprint identifies the machine; it is active at most once per licence.
	Fingerprint string
	Name        *string
}

// MachineActivate activates a fingerprint on a licence. Activating a fingerprint that is
// already active returns its machine with created false, changing nothing. It locks the
// licence first, so two activations racing for the last free slot take turns and exactly
// one wins; the other is ErrMachineLimit, and an inactive licence ErrLicenseStatus (both
// ErrConflict).
func MachineActivate(ctx context.Context, tx pgx.Tx, st Step, p MachineActivateParams) (machine sql.Machine, created bool, err error) {
	license, err := queries.LicenseGetForUpdate(ctx, tx, sql.LicenseGetForUpdateParams{TenantID: p.TenantID, ID: p.LicenseID})
	if err != nil {
		return sql.Machine{}, false, fmt.Errorf("licence %s: %w", p.LicenseID, err)
	}
	existing, err := queries.MachineGetActiveByFingerprint(ctx, tx, sql.MachineGetActiveByFingerprintParams{
		TenantID: p.TenantID, LicenseID: p.LicenseID, Fingerprint: p.Fingerprint,
	})
	if err == nil {
		return existing, false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return sql.Machine{}, false, fmt.Errorf("find machine: %w", err)
	}
	machine, err = queries.MachineActivate(ctx, tx, sql.MachineActivateParams{
		TenantID: p.TenantID, ID: NewID(), LicenseID: p.LicenseID, Fingerprint: p.Fingerprint, Name: p.Name, Now: st.Now,
	})
	if errors.Is(err, ErrNotFound) {
		return sql.Machine{}, false, machineRefusal(ctx, tx, license)
	} else if err != nil {
		return sql.Machine{}, false, fmt.Errorf("activate machine: %w", err)
	}
	return machine, true, Record(ctx, tx, st, Change{TenantID: p.TenantID, Action: "machine.activate", SubjectType: "machine", SubjectID: machine.ID.String(), Event: MachineActivatedEvent(MachineFieldsOf(machine))})
}

// machineRefusal explains why MachineActivate activated nothing on license: it is not
// active (ErrLicenseStatus), or every slot of its effective limit, referral bonus included
// (LicenseMachineLimit), is in use (ErrMachineLimit).
func machineRefusal(ctx context.Context, tx pgx.Tx, license sql.License) error {
	if license.Status != sql.LicenseStatusActive {
		return fmt.Errorf("%w: licence %s is %s", ErrLicenseStatus, license.ID, license.Status)
	}
	limit, err := queries.LicenseMachineLimit(ctx, tx, sql.LicenseMachineLimitParams{TenantID: license.TenantID, LicenseID: license.ID})
	if err != nil || limit == nil {
		return fmt.Errorf("read the machine limit of licence %s: %w", license.ID, err)
	}
	return fmt.Errorf("%w: all %d machine slots of licence %s are in use", ErrMachineLimit, *limit, license.ID)
}

// MachineDeactivateParams names the active machine ID of licence LicenseID of TenantID.
type MachineDeactivateParams struct {
	TenantID  uuid.UUID
	LicenseID uuid.UUID
	ID        uuid.UUID
}

// MachineDeactivate deactivates an active machine of a licence; anything else is
// ErrNotFound.
func MachineDeactivate(ctx context.Context, tx pgx.Tx, st Step, p MachineDeactivateParams) (sql.Machine, error) {
	machine, err := queries.MachineDeactivate(ctx, tx, sql.MachineDeactivateParams{TenantID: p.TenantID, LicenseID: p.LicenseID, ID: p.ID, Now: st.Now})
	if err != nil {
		return sql.Machine{}, fmt.Errorf("active machine %s of licence %s: %w", p.ID, p.LicenseID, err)
	}
	return machine, Record(ctx, tx, st, Change{TenantID: p.TenantID, Action: "machine.deactivate", SubjectType: "machine", SubjectID: machine.ID.String(), Event: MachineDeactivatedEvent(MachineFieldsOf(machine))})
}
