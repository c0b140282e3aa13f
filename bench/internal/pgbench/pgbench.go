// Package pgbench runs Postgres' own load generator, pgbench, for the limits `make bench`
// measures Tessera against (report.TPCB, report.ValidateSQL): it finds the pgbench of the
// Postgres installation the embedded database runs on and reads the throughput it prints.
package pgbench

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
)

// Path returns the pgbench to run: the one next to the newest Debian Postgres server
// (/usr/lib/postgresql/<version>/bin, where internal/devdb/devdb.sh finds initdb), else the
// one on PATH.
func Path() (string, error) {
	dirs, err := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	if err != nil {
		return "", err
	}
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	if len(dirs) > 0 {
		return dirs[0], nil
	}
	path, err := exec.LookPath("pgbench")
	if err != nil {
		return "", fmt.Errorf("pgbench not found (Debian's postgresql package installs it; internal/devdb/devdb.sh installs that package): %w", err)
	}
	return path, nil
}

// version is the major version in a /usr/lib/postgresql/<version>/bin/pgbench path.
func version(path string) int {
	v, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	if err != nil { //lint:swallow a directory that is not a version sorts last
		return 0
	}
	return v
}

// tpsLine is pgbench's summary of the run's throughput.
var tpsLine = regexp.MustCompile(`(?m)^tps = ([0-9.]+)`)

// Exec runs pgbench with args (the database, a connection URL, last) and returns its output
// (stdout and stderr).
func Exec(ctx context.Context, args ...string) (string, error) {
	path, err := Path()
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("pgbench %v: %w\n%s", args, err, out.String())
	}
	return out.String(), nil
}

// Run runs pgbench with args, as Exec does, and returns the transactions per second it
// measured and its output.
func Run(ctx context.Context, args ...string) (float64, string, error) {
	out, err := Exec(ctx, args...)
	if err != nil {
		return 0, out, err
	}
	return TPS(out)
}

// TPS reads the transactions per second from pgbench's output, returned with it.
func TPS(output string) (float64, string, error) {
	m := tpsLine.FindStringSubmatch(output)
	if m == nil {
		return 0, output, fmt.Errorf("pgbench printed no \"tps = \" line:\n%s", output)
	}
	tps, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, output, fmt.Errorf("pgbench's tps %q: %w", m[1], err)
	}
	return tps, output, nil
}
