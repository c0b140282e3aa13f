// Package report records a benchmark's headline numbers for `make bench` (bench/run), which
// puts them in one table of ratios against pgbench measured in the same run. A benchmark calls
// Add for each number it measured; when TESSERA_BENCH_RESULTS names a file, the results are
// appended to it as JSON lines, otherwise Add does nothing (the benchmark's own Markdown on
// stdout stays its report when run by hand).
package report

import (
	"encoding/json"
	"fmt"
	"os"
)

// ResultsEnv is the environment variable naming the file results are appended to.
const ResultsEnv = "TESSERA_BENCH_RESULTS"

// The limits the table's ratios are taken against: results named so are measured by pgbench in
// the same run, on the same Postgres cluster.
const (
	// TPCB is pgbench's built-in TPC-B-like transaction at 16 clients, in transactions/s.
	TPCB = "pgbench TPC-B, 16 clients"
	// ValidateSQL is pgbench running LicenseValidate's own SQL at 32 clients, in transactions/s.
	ValidateSQL = "pgbench LicenseValidate SQL, 32 clients"
)

// Result is one measured number: Name says what was measured ("PayIns settled"), Unit its
// unit ("/s", "ms", "s", "KiB"), and Limit, when set, the Name of the result it is a fraction
// of (TPCB, ValidateSQL).
type Result struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	Limit string  `json:"limit,omitempty"`
}

// Add appends r to the results file named by TESSERA_BENCH_RESULTS, if any.
func Add(r Result) error {
	path := os.Getenv(ResultsEnv)
	if path == "" {
		return nil
	}
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("report %s: %w", r.Name, err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("report %s: %w", r.Name, err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		_ = f.Close()
		return fmt.Errorf("report %s: %w", r.Name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("report %s: %w", r.Name, err)
	}
	return nil
}
