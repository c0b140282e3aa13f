// Command sandboxdata measures a sandbox tenant's reset and clone (POST /v1/admin/sandbox/reset
// and /clone, core.SandboxReset and core.SandboxClone): it fills a sandbox tenant with
// -customers customers, each with a licence issued through core.LicenseIssue (so with its
// audit entry and license.issued event), clones it, then resets the source, each in one
// transaction as the API runs it, and prints the rows each copied or deleted and its wall time
// (the wall times also go to make bench's table, bench/internal/report).
//
//	DATABASE_URL=... go run ./bench/sandboxdata -customers 10000
//
// It creates the database named by -db on DATABASE_URL's server (dropping it first), migrates
// it with internal/migrate.Up, and drops it at the end unless -keep is given.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/bench/internal/benchdb"
	"github.com/tessera/tessera/bench/internal/report"
	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/secrets"
	"github.com/tessera/tessera/internal/upstream"
	"github.com/tessera/tessera/sql"
)

// options are the command's flags.
type options struct {
	customers int
	dbName    string
	keep      bool
}

func main() {
	var o options
	flag.IntVar(&o.customers, "customers", 10_000, "customers of the sandbox, each with one licence")
	flag.StringVar(&o.dbName, "db", "tessera_bench_sandboxdata", "database to create on DATABASE_URL's server")
	flag.BoolVar(&o.keep, "keep", false, "keep the database at the end")
	flag.Parse()
	if err := run(context.Background(), o); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, o options) (err error) {
	db, err := benchdb.Create(ctx, o.dbName)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close(ctx, o.keep)) }()
	return measure(ctx, core.DB(db.Pool), o)
}

// measure fills the sandbox, then clones and resets it, printing what each did.
func measure(ctx context.Context, db pg.DB, o options) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	box, err := secrets.New(key)
	if err != nil {
		return err
	}
	sandboxClock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	st := core.Step{Now: sandboxClock, Actor: core.Actor{Type: core.ActorCLI, ID: "bench"}, Box: box}
	var source sql.Tenant
	start := clock.System{}.Now()
	err = pg.InTx(ctx, db, func(tx pgx.Tx) error {
		if source, err = core.TenantCreate(ctx, tx, st, core.TenantCreateParams{Slug: "bench", Name: "Bench", SandboxClock: &sandboxClock}); err != nil {
			return err
		}
		product, err := core.ProductCreate(ctx, tx, st, core.ProductCreateParams{TenantID: source.ID, Slug: "app", Name: "App", Sent: struct{}{}})
		if err != nil {
			return err
		}
		policy, err := sql.New().PolicyCreate(ctx, tx, sql.PolicyCreateParams{TenantID: source.ID, ID: core.NewID(), ProductID: product.ID,
			Slug: "pro", Name: "Pro", ListedCurrency: sql.CurrencySAT, ListedValue: 1000, GracePeriodDays: 7, Entitlements: []string{}, Now: st.Now})
		if err != nil {
			return err
		}
		for i := range o.customers {
			customer, err := core.CustomerCreate(ctx, tx, st, core.CustomerCreateParams{TenantID: source.ID, Email: fmt.Sprintf("c%d@example.com", i), IsActive: true})
			if err != nil {
				return err
			}
			if _, err := core.LicenseIssue(ctx, tx, st, core.LicenseIssueParams{TenantID: source.ID, PolicyID: policy.ID, CustomerID: customer.ID}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("fill the sandbox: %w", err)
	}
	fmt.Printf("filled: %d customers with a licence each in %s\n", o.customers, clock.System{}.Now().Sub(start).Round(time.Millisecond))

	start = clock.System{}.Now()
	var clone core.SandboxCloneResult
	err = pg.InTx(ctx, db, func(tx pgx.Tx) (err error) {
		clone, err = core.SandboxClone(ctx, tx, st, core.SandboxCloneParams{TenantID: source.ID, Slug: "bench-clone", Name: "Bench clone"})
		if err != nil {
			return err
		}
		return upstream.StoreKeysReseal(ctx, tx, st, upstream.StoreKeysResealParams{SourceID: source.ID, CloneID: clone.Tenant.ID})
	})
	if err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	if err := record("clone", o.customers, clone.Copied, clock.System{}.Now().Sub(start)); err != nil {
		return err
	}

	start = clock.System{}.Now()
	var reset core.SandboxResetResult
	err = pg.InTx(ctx, db, func(tx pgx.Tx) (err error) {
		reset, err = core.SandboxReset(ctx, tx, st, core.SandboxResetParams{TenantID: source.ID})
		return err
	})
	if err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	return record("reset", o.customers, reset.Deleted, clock.System{}.Now().Sub(start))
}

// record prints an operation's rows per table, in all, its wall time and its rows per second,
// and reports its wall time for make bench.
func record(what string, customers int, rows map[string]int64, took time.Duration) error {
	var total int64
	for _, n := range rows {
		total += n
	}
	fmt.Printf("%s: %d rows %v in %s (%.0f rows/s)\n", what, total, rows, took.Round(time.Millisecond), float64(total)/took.Seconds())
	return report.Add(report.Result{Name: fmt.Sprintf("sandbox %s, %d customers with a licence each", what, customers), Value: took.Seconds(), Unit: "s"})
}
