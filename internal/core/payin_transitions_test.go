package core_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/payment"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// TestPayInTransitions tries every PayIn move from every state: the allowed ones happen,
// the others are ErrConflict and change nothing.
func TestPayInTransitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// reach puts a new PayIn of l in state.
	reach := func(t *testing.T, l *ledger, state sql.PayInState) sql.PayIn {
		payin, err := l.purchase(t, 100)
		require.NoError(t, err)
		l.inTx(t, func(tx pgx.Tx) error {
			switch state {
			case sql.PayinStatePENDING, sql.PayinStatePAID:
				payin, _, err = core.PayInInvoiceCreated(ctx, tx, factory.Step(), payin, "btcpay",
					payment.Invoice{ID: "inv-" + payin.ID.String(), AmountSats: 100, CheckoutURL: "http://pay"})
				if err == nil && state == sql.PayinStatePAID {
					payin, err = core.PayInPaid(ctx, tx, factory.Step(), payin, []sql.PayInState{sql.PayinStatePENDING}, 0)
				}
			case sql.PayinStateFAILED:
				payin, err = core.PayInFail(ctx, tx, factory.Step(), l.tenant.ID, payin.ID,
					[]sql.PayInState{sql.PayinStatePENDINGINVOICECREATION}, sql.PayinFailureReasonSYSTEMCANCELLED, 0)
			}
			return err
		})
		require.Equal(t, state, payin.State)
		return payin
	}

	moves := map[string]struct {
		allowedFrom []sql.PayInState
		move        func(tx pgx.Tx, p sql.PayIn) error
	}{
		"InvoiceCreated": {[]sql.PayInState{sql.PayinStatePENDINGINVOICECREATION}, func(tx pgx.Tx, p sql.PayIn) error {
			_, _, err := core.PayInInvoiceCreated(ctx, tx, factory.Step(), p, "btcpay",
				payment.Invoice{ID: "again-" + p.ID.String(), AmountSats: 100, CheckoutURL: "http://pay"})
			return err
		}},
		"Settled": {[]sql.PayInState{sql.PayinStatePENDING}, func(tx pgx.Tx, p sql.PayIn) error {
			_, err := core.PayInPaid(ctx, tx, factory.Step(), p, []sql.PayInState{sql.PayinStatePENDING}, 0)
			return err
		}},
		"Cancelled": {[]sql.PayInState{sql.PayinStatePENDINGINVOICECREATION, sql.PayinStatePENDING}, func(tx pgx.Tx, p sql.PayIn) error {
			_, err := core.PayInFail(ctx, tx, factory.Step(), p.TenantID, p.ID,
				[]sql.PayInState{sql.PayinStatePENDINGINVOICECREATION, sql.PayinStatePENDING}, sql.PayinFailureReasonUSERCANCELLED, 0)
			return err
		}},
	}
	states := []sql.PayInState{sql.PayinStatePENDINGINVOICECREATION, sql.PayinStatePENDING, sql.PayinStatePAID, sql.PayinStateFAILED}
	for name, m := range moves {
		for _, from := range states {
			t.Run(name+"From"+string(from), func(t *testing.T) {
				t.Parallel()
				l := newLedger(t, testdb.Tx(t), 0, 0)
				defer l.requireInvariants(t)
				payin := reach(t, l, from)
				// A refused move returns its error, so its savepoint is rolled back.
				err := pg.InTx(ctx, l.db, func(tx pgx.Tx) error { return m.move(tx, payin) })
				allowed := false
				for _, a := range m.allowedFrom {
					allowed = allowed || a == from
				}
				if !allowed {
					require.ErrorIs(t, err, core.ErrConflict)
					got, getErr := queries.PayInGet(ctx, l.db, sql.PayInGetParams{TenantID: payin.TenantID, ID: payin.ID})
					require.NoError(t, getErr)
					require.Equal(t, from, got.State, "a refused move changes nothing")
					return
				}
				require.NoError(t, err)
			})
		}
	}
}
