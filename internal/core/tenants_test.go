package core_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/testdb"
)

// TestTenantCreate creates a live tenant (no clock, created at the step's time) and a
// sandbox tenant (its clock and created_at at the chosen instant).
func TestTenantCreate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := core.Tx(testdb.Tx(t))
	sandboxClock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

	live, err := core.TenantCreate(ctx, tx, factory.Step(), core.TenantCreateParams{Slug: "live-" + suffix(), Name: "Live"})
	require.NoError(t, err)
	require.Nil(t, live.ClockAt)
	require.True(t, factory.Now.Equal(live.CreatedAt))

	sandbox, err := core.TenantCreate(ctx, tx, factory.Step(), core.TenantCreateParams{Slug: "sandbox-" + suffix(), Name: "Sandbox", SandboxClock: &sandboxClock})
	require.NoError(t, err)
	require.NotNil(t, sandbox.ClockAt)
	require.True(t, sandboxClock.Equal(*sandbox.ClockAt))
	require.True(t, sandboxClock.Equal(sandbox.CreatedAt), "a sandbox tenant is created at its own clock")
}

// TestTenantClockGuard proves the database refuses to switch a tenant between live and
// sandbox time, either way, and to move a sandbox clock backwards; forwards is allowed.
func TestTenantClockGuard(t *testing.T) {
	t.Parallel()
	sandboxClock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	later, earlier := sandboxClock.Add(time.Hour), sandboxClock.Add(-time.Second)

	// setClock sets a tenant's clock in its own transaction, a live tenant's (sandbox false)
	// or a sandbox tenant's standing at sandboxClock.
	setClock := func(t *testing.T, sandbox bool, clockAt *time.Time) (*time.Time, error) {
		t.Helper()
		tx := core.Tx(testdb.Tx(t))
		tenant := factory.Tenant(t, tx)
		if sandbox {
			tenant = factory.SandboxTenant(t, tx, sandboxClock)
		}
		var got *time.Time
		err := tx.QueryRow(context.Background(), "UPDATE tenants SET clock_at = $2 WHERE id = $1 RETURNING clock_at", tenant.ID, clockAt).Scan(&got)
		return got, err
	}

	t.Run("LiveToSandbox", func(t *testing.T) {
		t.Parallel()
		_, err := setClock(t, false, &later)
		require.ErrorIs(t, err, core.ErrInvalid)
		require.ErrorContains(t, err, "tenants_clock_mode")
	})
	t.Run("SandboxToLive", func(t *testing.T) {
		t.Parallel()
		_, err := setClock(t, true, nil)
		require.ErrorIs(t, err, core.ErrInvalid)
		require.ErrorContains(t, err, "tenants_clock_mode")
	})
	t.Run("Backwards", func(t *testing.T) {
		t.Parallel()
		_, err := setClock(t, true, &earlier)
		require.ErrorIs(t, err, core.ErrInvalid)
		require.ErrorContains(t, err, "tenants_clock_forward")
	})
	t.Run("Forwards", func(t *testing.T) {
		t.Parallel()
		got, err := setClock(t, true, &later)
		require.NoError(t, err)
		require.True(t, later.Equal(*got))
	})
	t.Run("LiveStaysLive", func(t *testing.T) {
		t.Parallel()
		got, err := setClock(t, false, nil)
		require.NoError(t, err)
		require.Nil(t, got)
	})
}

func suffix() string { return uuid.NewString()[:8] }
