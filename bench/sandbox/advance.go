package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tessera/tessera/bench/internal/benchdb"
	"github.com/tessera/tessera/bench/internal/benchsql"
	"github.com/tessera/tessera/bench/internal/report"
	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/sql"
)

// planDay is the day of the advance whose first run is followed by the plans: late in the
// first month, while the unpaid subscriptions renewed over the past week are past_due.
const planDay = 20

// measurement is what an advance measured.
type measurement struct {
	advance sql.ClockAdvance
	batch   int
	runs    int
	// elapsed is the runs' wall time (the plans taken between two runs are not in it);
	// slowest is the longest run.
	elapsed, slowest time.Duration
	// queries are the queries that took the most time, the plans' included.
	queries []benchdb.QueryTime
	// months are the runs by the month of the sandbox clock they ended in.
	months []month
	plans  plans
}

// month is the runs that ended with the sandbox clock in one calendar month.
type month struct {
	month                    time.Time
	runs, instants, renewals int
	elapsed                  time.Duration
}

// add counts a run that took took and ended with advance.
func (m *measurement) add(advance sql.ClockAdvance, took time.Duration) {
	at := time.Date(advance.ClockAt.Year(), advance.ClockAt.Month(), 1, 0, 0, 0, 0, time.UTC)
	if len(m.months) == 0 || !m.months[len(m.months)-1].month.Equal(at) {
		m.months = append(m.months, month{month: at})
	}
	last := &m.months[len(m.months)-1]
	last.runs++
	last.elapsed += took
	last.instants += int(advance.Instants - m.advance.Instants)
	last.renewals += int(advance.RenewalsStarted - m.advance.RenewalsStarted)
	m.runs, m.elapsed, m.slowest, m.advance = m.runs+1, m.elapsed+took, max(m.slowest, took), advance
}

// advance advances the sandbox clock to to as the clock.advance job does: it starts the
// advance, then runs it, batch things per transaction, until it has succeeded. After the
// first run that reaches planDay, it takes the plans.
func (b book) advance(ctx context.Context, batch int, to time.Time) (measurement, error) {
	m := measurement{batch: batch}
	err := pg.InTx(ctx, b.db, func(tx pgx.Tx) (err error) {
		m.advance, err = core.ClockAdvanceStart(ctx, tx, b.st, core.ClockAdvanceParams{TenantID: b.tenant, To: &to})
		return err
	})
	if err != nil {
		return m, err
	}
	planAt := start.AddDate(0, 0, planDay)
	for m.advance.Status == sql.ClockAdvanceStatusRunning {
		began := clock.System{}.Now()
		var advance sql.ClockAdvance
		err := pg.InTx(ctx, b.db, func(tx pgx.Tx) (err error) {
			advance, err = core.ClockAdvanceRun(ctx, tx, b.st, core.ClockAdvanceRunParams{TenantID: b.tenant, ID: m.advance.ID, Batch: batch, Quotes: b.quotes})
			return err
		})
		if err != nil {
			return m, fmt.Errorf("run %d of the advance: %w", m.runs+1, err)
		}
		m.add(advance, time.Since(began))
		if m.plans.lines == nil && !m.advance.ClockAt.Before(planAt) {
			if m.plans, err = b.explain(ctx, m.advance.ClockAt, batch); err != nil {
				return m, err
			}
		}
	}
	return m, nil
}

// plans is EXPLAIN (ANALYZE, BUFFERS) of the queries an instant of the advance runs, at a
// clock, with what was pending then.
type plans struct {
	at             time.Time
	pastDue        int
	openInvoices   int
	queries, lines []string
}

// explain takes the plans of the queries ClockAdvanceRun runs at each instant (ClockNextDue,
// then what is due at the clock: expired invoices, renewals, lapses, licence expiries), each
// in a transaction rolled back, with the text read from sql/clock.sql.go.
func (b book) explain(ctx context.Context, at time.Time, batch int) (plans, error) {
	p := plans{at: at}
	err := b.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM subscriptions WHERE tenant_id = $1 AND status = 'past_due'),
		(SELECT count(*) FROM payins WHERE tenant_id = $1 AND state = 'PENDING')`, b.tenant).Scan(&p.pastDue, &p.openInvoices)
	if err != nil {
		return p, err
	}
	for _, q := range []struct {
		name, constant string
		args           []any
	}{
		{"ClockNextDue", "clockNextDue", []any{b.tenant}},
		{"PayInListExpiredForTenant", "payInListExpiredForTenant", []any{b.tenant, at, batch}},
		{"SubscriptionListDueForTenant", "subscriptionListDueForTenant", []any{b.tenant, at, batch}},
		{"SubscriptionLapseDueForTenant", "subscriptionLapseDueForTenant", []any{at, b.tenant, batch}},
		{"LicenseExpireDueForTenant", "licenseExpireDueForTenant", []any{at, b.tenant, batch}},
	} {
		text, err := benchsql.QueryText("sql/clock.sql.go", q.constant)
		if err != nil {
			return p, err
		}
		lines, err := explainRolledBack(ctx, b.pool, text, q.args)
		if err != nil {
			return p, fmt.Errorf("%s: %w", q.name, err)
		}
		p.queries, p.lines = append(p.queries, q.name), append(p.lines, strings.Join(lines, "\n"))
	}
	return p, nil
}

// explainRolledBack returns EXPLAIN (ANALYZE, BUFFERS) of text with args, run in a
// transaction that is always rolled back.
func explainRolledBack(ctx context.Context, pool *pgxpool.Pool, text string, args []any) ([]string, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // rolled back on purpose; nothing to keep
	rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+text, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// print prints the measurement as Markdown, with the tenant's subscriptions and renewal
// PayIns by state at the end.
func (m measurement) print(ctx context.Context, pool *pgxpool.Pool, tenant uuid.UUID) error {
	a := m.advance
	var subscriptions, autoPay int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE c.auto_pay) FROM subscriptions s
		JOIN customers c ON c.tenant_id = s.tenant_id AND c.id = s.customer_id WHERE s.tenant_id = $1`, tenant).Scan(&subscriptions, &autoPay); err != nil {
		return err
	}
	statuses, err := countBy(ctx, pool, "SELECT status::text, count(*) FROM subscriptions WHERE tenant_id = $1 GROUP BY 1 ORDER BY 1", tenant)
	if err != nil {
		return err
	}
	payins, err := countBy(ctx, pool, "SELECT type::text || ' ' || state::text, count(*) FROM payins WHERE tenant_id = $1 GROUP BY 1 ORDER BY 1", tenant)
	if err != nil {
		return err
	}
	seconds := m.elapsed.Seconds()
	settled := a.PayinsPaid + a.PayinsFailed
	fmt.Printf("Data: one sandbox tenant, %d monthly subscriptions (%d auto_pay with credits, %d unpaid), first renewals due over the first 30 days; its clock advanced from %s to %s in runs of %d.\n\n",
		subscriptions, autoPay, subscriptions-autoPay, a.FromAt.Format(time.DateOnly), a.ToAt.Format(time.DateOnly), m.batch)
	fmt.Print("| wall time | runs (slowest) | instants | renewals started | renewals/s | renewals paid | lapses | lapses/s | PayIns settled (paid + failed) | PayIns/s | invoices expired | licences expired |\n")
	fmt.Print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	fmt.Printf("| %s | %d (%s) | %d | %d | %.0f | %d | %d | %.1f | %d + %d | %.0f | %d | %d |\n\n",
		m.elapsed.Round(time.Millisecond), m.runs, m.slowest.Round(time.Millisecond), a.Instants, a.RenewalsStarted, float64(a.RenewalsStarted)/seconds,
		a.RenewalsPaid, a.SubscriptionsLapsed, float64(a.SubscriptionsLapsed)/seconds, a.PayinsPaid, a.PayinsFailed, float64(settled)/seconds,
		a.InvoicesExpired, a.LicensesExpired)
	fmt.Printf("Renewals failed: %d. After the advance: subscriptions %s; PayIns %s.\n\n", a.RenewalsFailed, statuses, payins)
	fmt.Print("The queries that took the most time (round trips as the client sees them, the plans' EXPLAIN included):\n\n| query | calls | total | mean |\n| --- | --- | --- | --- |\n")
	for _, q := range m.queries {
		fmt.Printf("| %s | %d | %s | %s |\n", q.Query, q.Calls, q.Total.Round(time.Millisecond), (q.Total / time.Duration(q.Calls)).Round(time.Microsecond))
	}
	fmt.Println()
	fmt.Print("By the month of the sandbox clock a run ended in:\n\n| month | runs | wall time | instants | instants/s | renewals started | renewals/s |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, mo := range m.months {
		fmt.Printf("| %s | %d | %s | %d | %.0f | %d | %.0f |\n", mo.month.Format("2006-01"), mo.runs, mo.elapsed.Round(time.Millisecond),
			mo.instants, float64(mo.instants)/mo.elapsed.Seconds(), mo.renewals, float64(mo.renewals)/mo.elapsed.Seconds())
	}
	fmt.Println()
	p := m.plans
	fmt.Printf("### Plans of an instant's queries at %s (%d past_due subscriptions, %d PENDING PayIns)\n\n", p.at.Format(time.RFC3339), p.pastDue, p.openInvoices)
	for i, name := range p.queries {
		fmt.Printf("#### %s\n\n```\n%s\n```\n\n", name, p.lines[i])
	}
	return nil
}

// report records the advance's wall time, renewals started and PayIns settled per second for
// make bench.
func (m measurement) report(subscriptions int) error {
	seconds := m.elapsed.Seconds()
	name := fmt.Sprintf("sandbox year advance, %d subscriptions", subscriptions)
	return errors.Join(
		report.Add(report.Result{Name: name + ": wall time", Value: seconds, Unit: "s"}),
		report.Add(report.Result{Name: name + ": renewals started", Value: float64(m.advance.RenewalsStarted) / seconds, Unit: "/s", Limit: report.TPCB}),
		report.Add(report.Result{Name: name + ": PayIns settled", Value: float64(m.advance.PayinsPaid+m.advance.PayinsFailed) / seconds, Unit: "/s", Limit: report.TPCB}),
	)
}

// countBy returns query's (label, count) rows for tenant as "label count, ...".
func countBy(ctx context.Context, pool *pgxpool.Pool, query string, tenant uuid.UUID) (string, error) {
	rows, err := pool.Query(ctx, query, tenant)
	if err != nil {
		return "", err
	}
	var parts []string
	var label string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&label, &n}, func() error {
		parts = append(parts, fmt.Sprintf("%s %d", label, n))
		return nil
	})
	return strings.Join(parts, ", "), err
}
