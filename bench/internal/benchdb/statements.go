package benchdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Statements counts, with pg_stat_statements, the SQL statements one database ran (every
// client's: Tessera's queries, River's, BEGIN and COMMIT), from StatementsStart to Count. It
// needs the server started with shared_preload_libraries=pg_stat_statements (the embedded
// database is, internal/devdb/devdb.sh) and a superuser or pg_read_all_stats connection.
type Statements struct {
	conn *pgx.Conn
	dbid uint32
}

// ErrNoStatements is StatementsStart's error when the server does not load pg_stat_statements.
var ErrNoStatements = errors.New("pg_stat_statements is not loaded (shared_preload_libraries)")

// StatementsStart creates the extension in conn's database when it is missing and forgets the
// database's statistics so far.
func StatementsStart(ctx context.Context, conn *pgx.Conn) (*Statements, error) {
	var loaded bool
	if err := conn.QueryRow(ctx, "SELECT 'pg_stat_statements' = ANY(string_to_array(current_setting('shared_preload_libraries'), ', '))").Scan(&loaded); err != nil {
		return nil, err
	}
	if !loaded {
		return nil, ErrNoStatements
	}
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		return nil, fmt.Errorf("create pg_stat_statements: %w", err)
	}
	s := &Statements{conn: conn}
	if err := conn.QueryRow(ctx, "SELECT oid FROM pg_database WHERE datname = current_database()").Scan(&s.dbid); err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_stat_statements_reset(0, $1, 0)", s.dbid); err != nil {
		return nil, fmt.Errorf("reset pg_stat_statements: %w", err)
	}
	return s, nil
}

// StatementCount is one statement's calls and plans (plans are counted only with
// pg_stat_statements.track_planning on) and the milliseconds Postgres spent executing it.
type StatementCount struct {
	Query        string
	Calls, Plans int64
	ExecMS       float64
}

// StatementTotals is what the database ran since StatementsStart: every statement's calls
// and plans in all, and the statements by calls, most first.
type StatementTotals struct {
	Calls, Plans int64
	ExecMS       float64
	Top          []StatementCount
}

// Count reads what the database ran since StatementsStart, leaving out the counting's own
// queries and the benchmark's (those whose text has a "-- bench" comment).
func (s *Statements) Count(ctx context.Context) (StatementTotals, error) {
	rows, err := s.conn.Query(ctx, `SELECT query, calls, plans, total_exec_time FROM pg_stat_statements
		WHERE dbid = $1 AND query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE '%-- bench%' ORDER BY calls DESC, query`, s.dbid)
	if err != nil {
		return StatementTotals{}, err
	}
	counts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (StatementCount, error) {
		var c StatementCount
		err := row.Scan(&c.Query, &c.Calls, &c.Plans, &c.ExecMS)
		return c, err
	})
	if err != nil {
		return StatementTotals{}, err
	}
	var t StatementTotals
	for _, c := range counts {
		t.Calls += c.Calls
		t.Plans += c.Plans
		t.ExecMS += c.ExecMS
		c.Query = strings.Join(strings.Fields(c.Query), " ")
		t.Top = append(t.Top, c)
	}
	return t, nil
}

// Print writes the totals divided by per (the settled PayIns, the renewals) and the
// statements by calls per unit, with their execution time per unit, as a Markdown table.
func (t StatementTotals) Print(w io.Writer, per int, unit string) {
	fmt.Fprintf(w, "%.1f statements per %s (%.1f plans; %.2f ms executing), %d in all:\n\n| calls per %s | plans per %s | exec ms per %s | statement |\n| --- | --- | --- | --- |\n",
		float64(t.Calls)/float64(per), unit, float64(t.Plans)/float64(per), t.ExecMS/float64(per), t.Calls, unit, unit, unit)
	for _, c := range t.Top {
		q := c.Query
		if len(q) > 110 {
			q = q[:110] + "…"
		}
		fmt.Fprintf(w, "| %.2f | %.2f | %.3f | `%s` |\n", float64(c.Calls)/float64(per), float64(c.Plans)/float64(per), c.ExecMS/float64(per), strings.ReplaceAll(q, "|", "\\|"))
	}
	fmt.Fprintln(w)
}
