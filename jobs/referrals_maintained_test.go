package jobs

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// TestReferralMaintainedMatchesFullRecompute is the property test of per-event maintenance:
// on a random tenant whose rewards a full recompute stored, after random changes made
// through core — referrals created, customers (de)activated, verified and given a referrer,
// events with and without IP hashes inside and outside the IP window, subscriptions created
// on qualifying and other policies and cancelled —, each recomputing its referrers in its own
// transaction, the stored rewards are exactly what a full recompute computes: it finds
// nothing to change.
func TestReferralMaintainedMatchesFullRecompute(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	outer := testdb.Tx(t)
	st := core.Step{Now: factory.Now, Actor: factory.Actor, Box: factory.Box, Jobs: factory.Jobs}
	rapid.Check(t, func(rt *rapid.T) {
		w, s, _ := genWorld(rt)
		tx, err := outer.Begin(ctx) // a savepoint per example, rolled back after it
		require.NoError(rt, err)
		defer func() { _ = tx.Rollback(ctx) }()
		l := load(t, tx, w, s)
		_, err = core.ReferralRecompute(ctx, tx, st, core.ReferralRecomputeParams{TenantID: l.tenant.ID})
		require.NoError(rt, err)
		policies := map[bool]uuid.UUID{}
		rows, err := tx.Query(ctx, "SELECT qualifies_for_referrals, id FROM policies WHERE tenant_id = $1", l.tenant.ID)
		require.NoError(rt, err)
		for rows.Next() {
			var q bool
			var id uuid.UUID
			require.NoError(rt, rows.Scan(&q, &id))
			policies[q] = id
		}
		require.NoError(rt, rows.Err())

		customers := l.ids
		customer := func(label string) uuid.UUID { return rapid.SampledFrom(customers).Draw(rt, label) }
		for i := range rapid.IntRange(1, 12).Draw(rt, "changes") {
			change, err := tx.Begin(ctx) // a change refused (a referral cycle, a cancelled subscription) leaves nothing
			require.NoError(rt, err)
			var desc string
			switch rapid.IntRange(0, 5).Draw(rt, "change") {
			case 0:
				referrer := customer("referrer")
				desc = "referral of " + referrer.String()
				var c sql.Customer
				c, err = core.CustomerCreate(ctx, change, st, core.CustomerCreateParams{
					TenantID: l.tenant.ID, Email: fmt.Sprintf("new-%d-%s@example.com", i, referrer), ReferredBy: &referrer,
					IsActive: rapid.Bool().Draw(rt, "active"), IsVerified: rapid.Bool().Draw(rt, "verified"),
				})
				if err == nil {
					customers = append(customers, c.ID)
				}
			case 1:
				id := customer("updated")
				p := core.CustomerUpdateParams{TenantID: l.tenant.ID, ID: id}
				switch rapid.IntRange(0, 2).Draw(rt, "field") {
				case 0:
					active := rapid.Bool().Draw(rt, "active")
					p.IsActive = &active
				case 1:
					verified := rapid.Bool().Draw(rt, "verified")
					p.IsVerified = &verified
				default:
					referrer := customer("new referrer")
					p.ReferredBy = &referrer
				}
				desc = fmt.Sprintf("update of %s: %+v", id, p)
				_, err = core.CustomerUpdate(ctx, change, st, p)
			case 2:
				e := core.CustomerEventNew{CustomerID: customer("event customer"), Type: rapid.SampledFrom([]string{"registered", "login"}).Draw(rt, "type")}
				if ip := rapid.SampledFrom([]string{"", "a", "b", "c"}).Draw(rt, "ip"); ip != "" {
					e.IPHash = &ip
				}
				at := factory.Now.Add(-time.Duration(rapid.SampledFrom([]int{0, 2, 8, 31}).Draw(rt, "days ago")) * day)
				e.OccurredAt = &at
				desc = fmt.Sprintf("event %+v", e)
				_, err = core.CustomerEventCreate(ctx, change, st, core.CustomerEventCreateParams{TenantID: l.tenant.ID, CustomerEventNew: e})
			case 3:
				p := core.SubscriptionCreateParams{TenantID: l.tenant.ID, CustomerID: customer("subscriber"), PolicyID: policies[rapid.Bool().Draw(rt, "qualifying")]}
				desc = fmt.Sprintf("subscription %+v", p)
				_, _, err = core.SubscriptionCreate(ctx, change, st, p)
			default:
				rows, qerr := change.Query(ctx, "SELECT id FROM subscriptions WHERE tenant_id = $1 AND status IN ('active', 'past_due') ORDER BY id", l.tenant.ID)
				require.NoError(rt, qerr)
				live, qerr := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
				require.NoError(rt, qerr)
				if len(live) == 0 {
					require.NoError(rt, change.Rollback(ctx))
					continue
				}
				p := core.SubscriptionCancelParams{TenantID: l.tenant.ID, ID: rapid.SampledFrom(live).Draw(rt, "cancelled")}
				desc = fmt.Sprintf("cancel %+v", p)
				_, _, err = core.SubscriptionCancel(ctx, change, st, p)
			}
			if errors.Is(err, core.ErrInvalid) || errors.Is(err, core.ErrConflict) { // refused: a referral cycle, a second referrer
				require.NoError(rt, change.Rollback(ctx))
				continue
			}
			require.NoError(rt, err, desc)
			require.NoError(rt, change.Commit(ctx))
		}

		drift, err := queries.ReferralCompute(ctx, core.CustomPlans{DB: tx}, sql.ReferralComputeParams{TenantID: l.tenant.ID, Now: factory.Now, ChangedOnly: true})
		require.NoError(rt, err)
		require.Len(rt, drift, 1)
		require.Nil(rt, drift[0].ReferrerID, "a stored reward differs from the full recompute's: %+v", drift[0])
	})
}
