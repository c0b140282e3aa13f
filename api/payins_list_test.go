package api_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/payment"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// countingDB is a pg.DB that counts the statements sent through it and through the
// transactions begun on it.
type countingDB struct {
	pg.DB
	statements *atomic.Int64
}

func (c countingDB) Exec(ctx context.Context, query string, args ...any) (pgconn.CommandTag, error) {
	c.statements.Add(1)
	return c.DB.Exec(ctx, query, args...)
}

func (c countingDB) Query(ctx context.Context, query string, args ...any) (pgx.Rows, error) {
	c.statements.Add(1)
	return c.DB.Query(ctx, query, args...)
}

func (c countingDB) QueryRow(ctx context.Context, query string, args ...any) pgx.Row {
	c.statements.Add(1)
	return c.DB.QueryRow(ctx, query, args...)
}

func (c countingDB) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := c.DB.Begin(ctx)
	return countingTx{Tx: tx, statements: c.statements}, err
}

// countingTx is a transaction of a countingDB.
type countingTx struct {
	pgx.Tx
	statements *atomic.Int64
}

func (c countingTx) Exec(ctx context.Context, query string, args ...any) (pgconn.CommandTag, error) {
	c.statements.Add(1)
	return c.Tx.Exec(ctx, query, args...)
}

func (c countingTx) Query(ctx context.Context, query string, args ...any) (pgx.Rows, error) {
	c.statements.Add(1)
	return c.Tx.Query(ctx, query, args...)
}

func (c countingTx) QueryRow(ctx context.Context, query string, args ...any) pgx.Row {
	c.statements.Add(1)
	return c.Tx.QueryRow(ctx, query, args...)
}

func (c countingTx) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := c.Tx.Begin(ctx)
	return countingTx{Tx: tx, statements: c.statements}, err
}

// TestPayInListQueries proves a page of PayIns costs the same number of queries whatever
// its size (no query per PayIn), and that the page shows each PayIn's parts, invoice and
// licence key as payin-get does.
func TestPayInListQueries(t *testing.T) {
	t.Parallel()
	statements := &atomic.Int64{}
	b := newBundle(t, countingDB{DB: testdb.Tx(t), statements: statements})
	customer := factory.Customer(t, b.db, b.tenant.ID)
	policy := factory.Policy(t, b.db, b.tenant.ID, factory.PolicyPrice(sql.CurrencySAT, 1000))
	_, err := sql.New().BalanceCredit(context.Background(), b.db, sql.BalanceCreditParams{
		TenantID: b.tenant.ID, CustomerID: customer.ID, Asset: sql.AssetCredits, Amount: 200*1000 + 300, Now: factory.Now,
	})
	require.NoError(t, err)
	// 200 PayIns paid by credits (a part and a licence each) and, newest, one paid by the
	// last 300 credits and an invoice: a page of 200 fetches 201.
	ctx := context.Background()
	require.NoError(t, pg.InTx(ctx, b.db, func(tx pgx.Tx) error {
		for range 200 {
			if _, err := core.PayInCreate(ctx, tx, factory.Step(), core.PayInCreateParams{
				TenantID: b.tenant.ID, CustomerID: customer.ID, Type: sql.PayinTypeLicensePurchase, PriceCurrency: sql.CurrencySAT, PriceValue: 1000,
				PolicyID: &policy.ID, Assets: []sql.Asset{sql.AssetCredits},
			}); err != nil {
				return err
			}
		}
		return nil
	}))
	var mixed sql.PayIn
	require.NoError(t, pg.InTx(ctx, b.db, func(tx pgx.Tx) error {
		mixed, err = core.PayInCreate(ctx, tx, factory.Step(), core.PayInCreateParams{
			TenantID: b.tenant.ID, CustomerID: customer.ID, Type: sql.PayinTypeLicensePurchase, PriceCurrency: sql.CurrencySAT, PriceValue: 1000,
			PolicyID: &policy.ID, Assets: []sql.Asset{sql.AssetCredits},
		})
		if err != nil {
			return err
		}
		_, _, err = core.PayInInvoiceCreated(ctx, tx, factory.Step(), core.PayInInvoiceParams{PayIn: mixed, Provider: "btcpay", Invoice: payment.Invoice{
			ID: "inv-mixed", AmountSats: 700, CheckoutURL: "https://pay.example/inv-mixed", ExpiresAt: factory.Now.Add(15 * time.Minute),
		}})
		return err
	}))

	counts := map[int]int64{}
	for _, limit := range []int{1, 50, 200} {
		statements.Store(0)
		res := b.request(t, http.MethodGet, fmt.Sprintf("/v1/admin/payins?limit=%d", limit), "")
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		counts[limit] = statements.Load()
		got := decode[struct {
			Items []payin `json:"items"`
		}](t, res)
		require.Len(t, got.Items, limit)
		first := got.Items[0]
		require.Equal(t, mixed.ID.String(), first.ID)
		require.Equal(t, "PENDING", first.State)
		require.Len(t, first.Parts, 1)
		require.Equal(t, "credits", first.Parts[0].Asset)
		require.Equal(t, int64(300), first.Parts[0].Amount)
		require.Equal(t, int64(0), first.Parts[0].BalanceAfter)
		require.NotNil(t, first.Invoice)
		require.Equal(t, "inv-mixed", first.Invoice.InvoiceID)
		require.Equal(t, int64(700), first.Invoice.AmountSats)
		require.Empty(t, first.LicenseKey)
		for _, p := range got.Items[1:] {
			require.Equal(t, "PAID", p.State)
			require.Len(t, p.Parts, 1)
			require.Equal(t, int64(1000), p.Parts[0].Amount)
			require.Nil(t, p.Invoice)
			require.NotEmpty(t, p.LicenseKey)
		}
	}
	t.Logf("statements per page by page size: %v", counts)
	require.Equal(t, counts[1], counts[200], "statements per page: %v", counts)
	require.Equal(t, counts[50], counts[200], "statements per page: %v", counts)
}
