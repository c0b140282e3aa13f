package core

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/sql"
)

// MachineActivate activates a fingerprint on a licence. Activating a fingerprint that is
// already active returns its machine with created false, changing nothing. It locks the
// licence first, so two activations racing for the last free slot take turns and exactly
// one wins; the other is ErrMachineLimit, and an inactive licence ErrLicenseStatus (both
// ErrConflict).
func MachineActivate(ctx context.Context, tx pgx.Tx, st Step, tenantID, licenseID uuid.UUID, fingerprint string, name *string) (machine sql.Machine, created bool, err error) {
	license, err := queries.LicenseGetForUpdate(ctx, tx, sql.LicenseGetForUpdateParams{TenantID: tenantID, ID: licenseID})
	if err != nil {
		return sql.Machine{}, false, fmt.Errorf("licence %s: %w", licenseID, DBError(err))
	}
	existing, err := queries.MachineGetActiveByFingerprint(ctx, tx, sql.MachineGetActiveByFingerprintParams{
		TenantID: tenantID, LicenseID: licenseID, Fingerprint: fingerprint,
	})
	if err = DBError(err); err == nil {
		return existing, false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return sql.Machine{}, false, fmt.Errorf("find machine: %w", err)
	}
	machine, err = queries.MachineActivate(ctx, tx, sql.MachineActivateParams{
		TenantID: tenantID, ID: NewID(), LicenseID: licenseID, Fingerprint: fingerprint, Name: name, Now: st.Now,
	})
	if err = DBError(err); errors.Is(err, ErrNotFound) {
		if license.Status != sql.LicenseStatusActive {
			return sql.Machine{}, false, fmt.Errorf("%w: licence %s is %s", ErrLicenseStatus, licenseID, license.Status)
		}
		limit, err := queries.LicenseMachineLimit(ctx, tx, sql.LicenseMachineLimitParams{TenantID: tenantID, LicenseID: licenseID})
		if err != nil || limit == nil {
			return sql.Machine{}, false, fmt.Errorf("read the machine limit of licence %s: %w", licenseID, DBError(err))
		}
		return sql.Machine{}, false, fmt.Errorf("%w: all %d machine slots of licence %s are in use", ErrMachineLimit, *limit, licenseID)
	} else if err != nil {
		return sql.Machine{}, false, fmt.Errorf("activate machine: %w", err)
	}
	return machine, true, Record(ctx, tx, st, Change{TenantID: tenantID, Action: "machine.activate", SubjectType: "machine", SubjectID: machine.ID.String(), Event: MachineActivatedEvent(MachineFieldsOf(machine))})
}

// MachineDeactivate deactivates an active machine of a licence; anything else is
// ErrNotFound.
func MachineDeactivate(ctx context.Context, tx pgx.Tx, st Step, tenantID, licenseID, machineID uuid.UUID) (sql.Machine, error) {
	machine, err := queries.MachineDeactivate(ctx, tx, sql.MachineDeactivateParams{TenantID: tenantID, LicenseID: licenseID, ID: machineID, Now: st.Now})
	if err != nil {
		return sql.Machine{}, fmt.Errorf("active machine %s of licence %s: %w", machineID, licenseID, DBError(err))
	}
	return machine, Record(ctx, tx, st, Change{TenantID: tenantID, Action: "machine.deactivate", SubjectType: "machine", SubjectID: machine.ID.String(), Event: MachineDeactivatedEvent(MachineFieldsOf(machine))})
}
