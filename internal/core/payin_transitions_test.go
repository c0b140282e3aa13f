package core_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/payment"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// payInStates are the states of a PayIn, in the order it goes through them.
var payInStates = []sql.PayInState{sql.PayinStatePENDINGINVOICECREATION, sql.PayinStatePENDING, sql.PayinStatePAID, sql.PayinStateFAILED}

// reach creates a PayIn of the ledger and puts it in state, each move in its own transaction.
func (l *ledger) reach(t *testing.T, state sql.PayInState) sql.PayIn {
	t.Helper()
	ctx := context.Background()
	payin, err := l.purchase(t, 100)
	require.NoError(t, err)
	l.inTx(t, func(tx pgx.Tx) error {
		switch state {
		case sql.PayinStatePENDING, sql.PayinStatePAID:
			payin, _, err = core.PayInInvoiceCreated(ctx, tx, factory.Step(), core.PayInInvoiceParams{PayIn: payin, Provider: "btcpay",
				Invoice: payment.Invoice{ID: "inv-" + payin.ID.String(), AmountSats: 100, CheckoutURL: "http://pay"}})
			if err == nil && state == sql.PayinStatePAID {
				payin, err = core.PayInPaid(ctx, tx, factory.Step(), core.PayInPaidParams{PayIn: payin, Move: core.PayInMovePay})
			}
		case sql.PayinStateFAILED:
			payin, err = core.PayInFail(ctx, tx, factory.Step(), core.PayInFailParams{TenantID: l.tenant.ID, ID: payin.ID, Move: core.PayInMoveSystemCancel})
		}
		return err
	})
	require.Equal(t, state, payin.State)
	return payin
}

// payInMake makes move on payin through the step that makes the moves to its state:
// PayInInvoiceCreated, PayInPaid or PayInFail.
func payInMake(ctx context.Context, tx pgx.Tx, payin sql.PayIn, move core.PayInMove) (sql.PayIn, error) {
	switch core.PayInMoves[move].To {
	case sql.PayinStatePENDING:
		payin, _, err := core.PayInInvoiceCreated(ctx, tx, factory.Step(), core.PayInInvoiceParams{PayIn: payin, Provider: "btcpay",
			Invoice: payment.Invoice{ID: "again-" + payin.ID.String(), AmountSats: 100, CheckoutURL: "http://pay"}})
		return payin, err
	case sql.PayinStatePAID:
		return core.PayInPaid(ctx, tx, factory.Step(), core.PayInPaidParams{PayIn: payin, Move: move})
	default:
		return core.PayInFail(ctx, tx, factory.Step(), core.PayInFailParams{TenantID: payin.TenantID, ID: payin.ID, Move: move})
	}
}

// TestPayInMoves makes every move of core.PayInMoves from every state. A move from one of
// its From states happens: the PayIn reaches its To with its reason, and the transition is
// recorded. Any other is ErrPayInState naming the state the PayIn is in, as the guarded
// update found it, and changes nothing.
func TestPayInMoves(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// The machine the table draws (SPEC 3): PAID and FAILED are final.
	reachable := map[sql.PayInState][]sql.PayInState{}
	for _, rule := range core.PayInMoves {
		for _, from := range rule.From {
			if !slices.Contains(reachable[from], rule.To) {
				reachable[from] = append(reachable[from], rule.To)
			}
		}
	}
	for _, to := range reachable {
		slices.Sort(to)
	}
	require.Equal(t, map[sql.PayInState][]sql.PayInState{
		sql.PayinStatePENDINGINVOICECREATION: {sql.PayinStateFAILED, sql.PayinStatePAID, sql.PayinStatePENDING},
		sql.PayinStatePENDING:                {sql.PayinStateFAILED, sql.PayinStatePAID},
	}, reachable)

	for move, rule := range core.PayInMoves {
		for _, from := range payInStates {
			t.Run(fmt.Sprintf("%s from %s", move, from), func(t *testing.T) {
				t.Parallel()
				l := newLedger(t, testdb.Tx(t), 0, 0)
				payin := l.reach(t, from)
				before, err := queries.PayInTransitions(ctx, l.db, sql.PayInTransitionsParams{TenantID: payin.TenantID, PayInID: payin.ID})
				require.NoError(t, err)
				// A refused move returns its error, so its savepoint is rolled back.
				var moved sql.PayIn
				err = pg.InTx(ctx, l.db, func(tx pgx.Tx) error {
					moved, err = payInMake(ctx, tx, payin, move)
					return err
				})
				after, getErr := queries.PayInTransitions(ctx, l.db, sql.PayInTransitionsParams{TenantID: payin.TenantID, PayInID: payin.ID})
				require.NoError(t, getErr)
				if !slices.Contains(rule.From, from) {
					require.ErrorIs(t, err, core.ErrPayInState)
					require.EqualError(t, err, fmt.Sprintf("conflict: payin %s is %s and cannot be %s", payin.ID, from, rule.Done))
					got, getErr := queries.PayInGet(ctx, l.db, sql.PayInGetParams{TenantID: payin.TenantID, ID: payin.ID})
					require.NoError(t, getErr)
					require.Equal(t, from, got.State, "a refused move changes nothing")
					require.Equal(t, before, after, "a refused move records nothing")
					return
				}
				require.NoError(t, err)
				require.Equal(t, rule.To, moved.State)
				last := after[len(after)-1]
				require.Len(t, after, len(before)+1)
				require.Equal(t, rule.To, last.ToState)
				if rule.First {
					require.Nil(t, last.FromState, "recorded as the PayIn's first state")
				} else {
					require.Equal(t, &from, last.FromState)
				}
				if rule.Reason == "" {
					require.Nil(t, moved.FailureReason)
				} else {
					require.Equal(t, rule.Reason, *moved.FailureReason)
					require.Equal(t, &rule.Reason, last.Reason)
				}
			})
		}
	}
	t.Run("PaidByAMoveNotToPaid", func(t *testing.T) {
		t.Parallel()
		l := newLedger(t, testdb.Tx(t), 0, 0)
		pending := l.reach(t, sql.PayinStatePENDING)
		l.inTx(t, func(tx pgx.Tx) error {
			_, err := core.PayInPaid(ctx, tx, factory.Step(), core.PayInPaidParams{PayIn: pending, Move: core.PayInMoveCancel})
			require.ErrorIs(t, err, core.ErrInvalid, "a move that does not lead to PAID does not pay")
			return nil
		})
	})
}

// TestPayInMoveRefusalIsCurrent races a settle against a cancel of one PENDING PayIn on two
// connections: the settle waits for the cancel's lock, and its refusal names the state the
// cancel committed (FAILED), not the PENDING it started from.
func TestPayInMoveRefusalIsCurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := testdb.Clone(t)
	l := newLedger(t, core.DB(pool), 0, 0)
	payin := l.reach(t, sql.PayinStatePENDING)

	cancel, err := l.db.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = cancel.Rollback(ctx) }()
	_, err = core.PayInFail(ctx, cancel, factory.Step(), core.PayInFailParams{TenantID: payin.TenantID, ID: payin.ID, Move: core.PayInMoveCancel})
	require.NoError(t, err)

	settled := make(chan error)
	go func() {
		settled <- pg.InTx(ctx, l.db, func(tx pgx.Tx) error {
			_, err := core.PayInPaid(ctx, tx, factory.Step(), core.PayInPaidParams{PayIn: payin, Move: core.PayInMovePay})
			return err
		})
	}()
	require.Eventually(t, func() bool {
		var waiting bool
		require.NoError(t, pool.QueryRow(ctx,
			"SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database())").Scan(&waiting))
		return waiting
	}, 20*time.Second, 20*time.Millisecond, "the settle waits for the cancel's lock")
	require.NoError(t, cancel.Commit(ctx))

	err = <-settled
	require.ErrorIs(t, err, core.ErrPayInState)
	require.EqualError(t, err, fmt.Sprintf("conflict: payin %s is FAILED and cannot be paid", payin.ID))
	l.requireInvariants(t)
}
