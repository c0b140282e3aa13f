package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRender renders testdata/run.json, a run's record, and checks the table: the limit is
// the best pgbench run, ratios are taken against it, goals are judged, a failed step, a step
// not run and a step without results are shown, missing goals are listed, and each output is collapsed.
func TestRender(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/run.json")
	require.NoError(t, err)
	var rec record
	require.NoError(t, json.Unmarshal(raw, &rec))

	got := render(rec)

	require.Contains(t, got, "Run 2026-12-01 21:00 UTC at commit abc1234, 2 CPUs (Test CPU), 23.5 GiB of memory, PostgreSQL 15.18; took 25m0s; load average 1.50 at the start, 2.25 at the end")
	require.Contains(t, got, "| pgbench TPC-B, 16 clients | 4,000/s (pgbench -c16 -j2 -T30 -M prepared (scale 16), before the benchmarks)<br>4,800/s (pgbench -c16 -j2 -T30 -M prepared (scale 16), after the benchmarks) | 4,800/s |\n")
	require.Contains(t, got, "| pgbench LicenseValidate SQL, 32 clients | 20,000/s (bench/validate) | 20,000/s |\n")
	require.Contains(t, got, "| `bench/payins -n 2000 -c 16` | PayIns settled | 1,200/s | pgbench TPC-B, 16 clients: 4,800/s | 25.0% | ≥ 25% of the limit: **met** | tessera serve: peak 100.0 MiB, at the end 80.0 MiB (40.0 MiB when started) |\n")
	require.Contains(t, got, "|  | webhook p99 | 12.3 ms |  |  |  |  |\n")
	require.Contains(t, got, "| `bench/validate` | validations, 32 connections | 10,000/s | pgbench LicenseValidate SQL, 32 clients: 20,000/s | 50.0% | ≥ 60% of the limit: not met | tessera serve: peak 64.0 MiB, at the end 58.6 MiB |\n")
	require.Contains(t, got, "|  | validation p99, 8 connections | 4.20 ms |  |  | < 5.00 ms: **met** |  |\n")
	require.Contains(t, got, "|  | validation p99, 8 connections, payment run | 9.10 ms |  |  | ≤ 2× validation p99, 8 connections: not met |  |\n")
	require.Contains(t, got, "| `bench/webhooks -variant dead` | **failed**: exit status 1: none of B's 150 events \\| arrived |  |  |  |  |  |\n")
	require.Contains(t, got, "| `bench/sandbox` | not run: bench/sandbox is not in this tree |  |  |  |  |  |\n")
	require.Contains(t, got, "| `bench/sandboxdata -customers 10000` | (reported no result) |  |  |  |  | bench/sandboxdata itself: peak 50.0 MiB |\n")
	require.Contains(t, got, "Goals whose result this run did not produce: `Revocation worker's pick (all tenants, limit 1) at 1000000 licences, median`, `referral full recompute at 1M customers, first run`, `referral full recompute at 1M customers, nothing changed`, `renewals`.\n")
	require.Contains(t, got, "<details><summary><code>bench/payins -n 2000 -c 16</code> (20s)</summary>\n\n#### EXPLAIN of the settle\n\n```\nIndex Scan using payins_pkey\n```\n\n</details>\n")
	require.NotContains(t, got, "<code>bench/validate</code>", "a step without output gets no <details>")
}

// TestReplaceBetweenMarkers replaces only what lies between the markers, and refuses a README
// without them.
func TestReplaceBetweenMarkers(t *testing.T) {
	t.Parallel()
	readme := "# Benchmarks\n\nintro\n\n" + beginMarker + "\nold table\n" + endMarker + "\n\n## By hand\n\nkept\n"

	got, err := replaceBetweenMarkers(readme, "new table\n")
	require.NoError(t, err)
	require.Equal(t, "# Benchmarks\n\nintro\n\n"+beginMarker+"\nnew table\n"+endMarker+"\n\n## By hand\n\nkept\n", got)

	again, err := replaceBetweenMarkers(got, "newer table\n")
	require.NoError(t, err)
	require.Equal(t, strings.Replace(got, "new table", "newer table", 1), again)

	_, err = replaceBetweenMarkers("# Benchmarks\n", "table\n")
	require.ErrorContains(t, err, "lacks the make bench markers")
	_, err = replaceBetweenMarkers(endMarker+"\n"+beginMarker+"\n", "table\n")
	require.ErrorContains(t, err, "lacks the make bench markers")
}

// TestCheckedInReadmeHasMarkers keeps bench/README.md writable by make bench.
func TestCheckedInReadmeHasMarkers(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	_, err = replaceBetweenMarkers(string(raw), "table\n")
	require.NoError(t, err)
}

// TestValue formats numbers with three significant digits at most and their unit.
func TestValue(t *testing.T) {
	t.Parallel()
	for v, want := range map[float64]string{1234567.8: "1,234,568/s", 123.4: "123/s", 12.34: "12.3/s", 1.234: "1.23/s", 0.01234: "0.0123/s"} {
		require.Equal(t, want, value(v, "/s"))
	}
	require.Equal(t, "2.41 s", value(2.41, "s"))
}
