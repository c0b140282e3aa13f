package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/tessera/tessera/internal/btcpay"
	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/fakebtcpay"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/payment"
	"github.com/tessera/tessera/internal/secrets"
	"github.com/tessera/tessera/jobs"
)

// throughput makes every generated subscription due, then runs Tessera's workers (a real
// River client, workers goroutines) against a fake BTCPay on loopback: one renewal sweep
// enqueues the renewals (chaining sweeps while batches are full), each renewal creates its
// PayIn, and each PayIn's invoice is created at the fake BTCPay. It reports renewals per
// second until every subscription's cycle is open and its invoice created.
func throughput(ctx context.Context, pool *pgxpool.Pool, now time.Time, workers int) error {
	_, err := pool.Exec(ctx, `UPDATE subscriptions SET status = 'active', cancelled_at = NULL, consecutive_failures = 0,
		current_period_start = $1::timestamptz - make_interval(0, 0, 0, 30, 0, 0, 1), current_period_end = $1::timestamptz - make_interval(0, 0, 0, 0, 0, 0, 1),
		next_renewal_at = $1::timestamptz - make_interval(0, 0, 0, 0, 0, 0, 1)`, now)
	if err != nil {
		return err
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM subscriptions").Scan(&n); err != nil {
		return err
	}
	fake, err := fakebtcpay.New(fakebtcpay.Config{StoreID: "bench", APIKey: "bench", WebhookSecret: "bench", Rates: map[string]string{"USD": "50000.00"}})
	if err != nil {
		return err
	}
	srv := httptest.NewServer(fake.Handler())
	defer srv.Close()
	client, err := btcpay.New(btcpay.Config{BaseURL: srv.URL, StoreID: "bench", APIKey: "bench", WebhookSecret: "bench"})
	if err != nil {
		return err
	}
	rates, err := payment.NewFixed(clock.NewManual(now), map[string]int64{"USD": 5_000_000})
	if err != nil {
		return err
	}
	box, err := secrets.New(make([]byte, secrets.KeySize))
	if err != nil {
		return err
	}
	log := slog.New(slog.DiscardHandler)
	ws, err := jobs.Workers(jobs.Config{DB: pool, Clock: clock.NewManual(now), Log: log, Box: box, Payments: client, Rates: rates})
	if err != nil {
		return err
	}
	rc, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Logger: log, Workers: ws, Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: workers}},
		FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond,
	})
	if err != nil {
		return err
	}
	start := clock.System{}.Now()
	if err := rc.Start(ctx); err != nil {
		return err
	}
	defer rc.Stop(context.WithoutCancel(ctx)) //nolint:errcheck // the measurement is done
	if _, err := rc.Insert(ctx, jobargs.SubscriptionRenewSweep{}, nil); err != nil {
		return err
	}
	for {
		var invoiced int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM payins WHERE type = 'subscription_renewal' AND state = 'PENDING'").Scan(&invoiced); err != nil {
			return err
		}
		if invoiced == n {
			break
		}
		if time.Since(start) > 30*time.Minute {
			return fmt.Errorf("only %d of %d renewals invoiced after 30 minutes", invoiced, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(start)
	fmt.Printf("%d renewals (sweep, subscription.renew, payin.create_invoice at the fake BTCPay) with %d workers in %s: %.0f renewals/s\n",
		n, workers, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
	fmt.Fprintf(os.Stderr, "fake BTCPay answered %d requests\n", fake.Requests())
	return nil
}
