package jobs

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

func TestLicenseExpireSweepWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := testdb.Tx(t)
	t.Cleanup(func() { factory.RequireEventsDocumented(t, tx) })
	clk := clock.NewManual(factory.Now)
	worker := &LicenseExpireSweepWorker{cfg: Config{DB: tx, Clock: clk, Log: slog.New(slog.DiscardHandler), Box: factory.Box}}
	w := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, worker)

	tenants := []sql.Tenant{factory.Tenant(t, tx), factory.Tenant(t, tx)}
	var due, notYet []sql.License
	for _, tenant := range tenants {
		recurring := factory.Policy(t, tx, tenant.ID, factory.PolicyRecurring(30), factory.PolicyGraceDays(0))
		customer := factory.Customer(t, tx, tenant.ID)
		due = append(due, factory.License(t, tx, tenant.ID, recurring.ID, customer.ID))
		later := factory.Now.Add(60 * 24 * time.Hour)
		notYet = append(notYet, factory.License(t, tx, tenant.ID, recurring.ID, customer.ID, func(p *core.LicenseIssueParams) { p.ExpiresAt = &later }))
		factory.License(t, tx, tenant.ID, factory.Policy(t, tx, tenant.ID).ID, customer.ID) // never expires
	}
	status := func(l sql.License) sql.LicenseStatus {
		var s sql.LicenseStatus
		require.NoError(t, tx.QueryRow(ctx, "SELECT status FROM licenses WHERE tenant_id = $1 AND id = $2", l.TenantID, l.ID).Scan(&s))
		return s
	}
	expiredEvents := func() int {
		var n int
		require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM events WHERE type = 'license.expired' AND tenant_id = ANY($1)",
			[]any{tenants[0].ID, tenants[1].ID}).Scan(&n))
		return n
	}

	res, err := w.Work(ctx, t, tx, jobargs.LicenseExpireSweep{}, nil)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
	require.Equal(t, 0, expiredEvents(), "nothing is due yet")

	clk.Advance(30 * 24 * time.Hour)
	_, err = w.Work(ctx, t, tx, jobargs.LicenseExpireSweep{}, nil)
	require.NoError(t, err)
	for i := range tenants {
		require.Equal(t, sql.LicenseStatusExpired, status(due[i]), "every tenant's due licence")
		require.Equal(t, sql.LicenseStatusActive, status(notYet[i]))
	}
	require.Equal(t, 2, expiredEvents())

	_, err = w.Work(ctx, t, tx, jobargs.LicenseExpireSweep{}, nil)
	require.NoError(t, err)
	require.Equal(t, 2, expiredEvents(), "a second sweep finds nothing more")
}
