// Command run is `make bench`: it runs every benchmark in bench/ and the pgbench limits they
// are measured against in one run, on one Postgres cluster, and writes the table of ratios,
// goals and memory, with each benchmark's Markdown output (EXPLAIN (ANALYZE, BUFFERS) of its
// hot queries), between the markers near the top of bench/README.md.
//
//	DATABASE_URL="$(make -s db)" go run ./bench/run [-quick] [-only payins,webhooks]
//
// Flags:
//
//	-quick         small sizes, for a smoke run of a few minutes (make bench: BENCH_QUICK=1)
//	-only DIRS     run only these benchmarks (comma-separated bench/ directories); the pgbench
//	               limits always run
//	-readme PATH   the README whose generated part is replaced (bench/README.md)
//	-out DIR       where the binaries, logs, results and the run's record go (.tessera/bench)
//	-render FILE   run nothing: write the README from a record a run saved (DIR/run.json)
//
// It runs from the repository's root with DATABASE_URL naming the cluster (make bench passes
// the embedded database's, as make test does). In order: it builds ./tessera and the
// benchmarks into DIR/bin; measures pgbench's TPC-B (report.TPCB) in its own database
// tessera_bench_pgbench; runs the benchmarks that bring their own database and Tessera's code
// in-process (each creates and drops its database on the cluster); starts Tessera as make run
// does — migrate, bootstrap with an admin key, `tessera fake-btcpay` and `tessera serve` on
// free loopback ports, on database tessera_bench, with the validation rate limits lifted —
// and runs the benchmarks against it; measures TPC-B again; then writes the README. The
// invocations and their sizes are the table in benchmarks.go.
//
// Each benchmark records its headline numbers with bench/internal/report in the file
// TESSERA_BENCH_RESULTS names (one per benchmark, in DIR). Memory: while a benchmark runs
// against `tessera serve`, serve's resident set (VmRSS) is sampled every 200 ms; for the
// others it is the benchmark process's peak (rusage maxrss), Tessera's code running in it.
// A benchmark that fails is marked failed in the table and the others still run; the command
// then exits with status 1 after writing the README.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/bench/internal/pgbench"
	"github.com/tessera/tessera/bench/internal/report"
	"github.com/tessera/tessera/internal/clock"
)

// options are the command's flags.
type options struct {
	quick          bool
	only           string
	readme, out    string
	renderFromFile string
}

func main() {
	var o options
	flag.BoolVar(&o.quick, "quick", false, "small sizes, for a smoke run of a few minutes")
	flag.StringVar(&o.only, "only", "", "run only these benchmarks (comma-separated bench/ directories)")
	flag.StringVar(&o.readme, "readme", "bench/README.md", "the README whose generated part is replaced")
	flag.StringVar(&o.out, "out", ".tessera/bench", "directory for the binaries, logs, results and the run's record")
	flag.StringVar(&o.renderFromFile, "render", "", "run nothing: write the README from this saved record")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, o options) error {
	if o.renderFromFile != "" {
		raw, err := os.ReadFile(o.renderFromFile)
		if err != nil {
			return err
		}
		var rec record
		if err := json.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("%s: %w", o.renderFromFile, err)
		}
		return writeReadme(o.readme, rec)
	}
	base := os.Getenv("DATABASE_URL")
	if base == "" {
		return errors.New("DATABASE_URL is not set: run `make bench`, or set it to the cluster's URL (make -s db prints the embedded one)")
	}
	if _, err := os.Stat("bench/run/main.go"); err != nil {
		return fmt.Errorf("run from the repository's root: %w", err)
	}
	r := &runner{base: base, out: o.out, bin: filepath.Join(o.out, "bin"), quick: o.quick}
	selected, err := r.selected(o.only)
	if err != nil {
		return err
	}
	rec, err := r.all(ctx, selected)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		log.Printf("interrupted: writing what was measured")
	}
	raw, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.out, "run.json"), raw, 0o644); err != nil {
		return err
	}
	if err := writeReadme(o.readme, rec); err != nil {
		return err
	}
	log.Printf("wrote %s (the run's record: %s)", o.readme, filepath.Join(o.out, "run.json"))
	var failed []string
	for _, s := range rec.Steps {
		if s.Err != "" {
			failed = append(failed, s.Command)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed: %s", strings.Join(failed, "; "))
	}
	return nil
}

// writeReadme replaces the generated part of the README at path with rec's.
func writeReadme(path string, rec record) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	updated, err := replaceBetweenMarkers(string(old), render(rec))
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(updated), 0o644)
}

// runner runs one make bench.
type runner struct {
	base, out, bin string
	quick          bool
}

// selected returns the benchmarks of the table named by only (all when empty).
func (r *runner) selected(only string) ([]benchmark, error) {
	if only == "" {
		return benchmarks, nil
	}
	var picked []benchmark
	for _, dir := range strings.Split(only, ",") {
		n := len(picked)
		for _, b := range benchmarks {
			if b.Dir == dir {
				picked = append(picked, b)
			}
		}
		if len(picked) == n {
			return nil, fmt.Errorf("-only %s: no benchmark bench/%s in bench/run's table", only, dir)
		}
	}
	return picked, nil
}

// all builds, runs the limits and the benchmarks, and returns the run's record; when ctx is
// canceled (Ctrl-C), the steps still to run fail at once and the record says so.
func (r *runner) all(ctx context.Context, selected []benchmark) (record, error) {
	rec := record{Started: clock.System{}.Now(), Quick: r.quick, Command: "make bench"}
	if r.quick {
		rec.Command = "BENCH_QUICK=1 make bench"
	}
	if err := os.MkdirAll(r.bin, 0o755); err != nil {
		return rec, err
	}
	var err error
	if rec.Commit, err = commit(ctx); err != nil {
		return rec, err
	}
	if rec.Postgres, err = r.postgres(ctx); err != nil {
		return rec, err
	}
	rec.Machine, rec.Load[0] = machine(), loadAverage()

	missing := map[string]bool{}
	packages := []string{"./cmd/tessera"}
	for _, b := range selected {
		if _, err := os.Stat(filepath.Join("bench", b.Dir, "main.go")); errors.Is(err, os.ErrNotExist) {
			missing[b.Dir] = true
			continue
		} else if err != nil {
			return rec, err
		}
		if !slices.Contains(packages, "./bench/"+b.Dir) {
			packages = append(packages, "./bench/"+b.Dir)
		}
	}
	log.Printf("building %s into %s", strings.Join(packages, " "), r.bin)
	if out, err := exec.CommandContext(ctx, "go", append([]string{"build", "-o", r.bin + "/"}, packages...)...).CombinedOutput(); err != nil {
		return rec, fmt.Errorf("go build: %w\n%s", err, out)
	}

	tpcb, err := r.initTPCB(ctx)
	if err != nil {
		return rec, err
	}
	defer r.dropDatabase(ctx, tpcbDatabase)
	rec.Steps = append(rec.Steps, r.tpcb(ctx, tpcb, "before the benchmarks"))
	env := []string{"DATABASE_URL=" + r.base}
	var againstServe []benchmark
	for _, b := range selected {
		switch {
		case b.Serve:
			againstServe = append(againstServe, b)
		case missing[b.Dir]:
			rec.Steps = append(rec.Steps, b.skipped(r.quick))
		default:
			rec.Steps = append(rec.Steps, r.program(ctx, b, b.args(r.quick), env, nil))
		}
	}
	rec.Steps = append(rec.Steps, r.againstServe(ctx, againstServe, missing)...)
	rec.Steps = append(rec.Steps, r.tpcb(ctx, tpcb, "after the benchmarks"))
	rec.Load[1], rec.Elapsed = loadAverage(), time.Since(rec.Started)
	return rec, nil
}

// skipped is the step of a benchmark of the table that the tree lacks.
func (b benchmark) skipped(quick bool) step {
	return step{Command: b.command(quick), Skipped: "bench/" + b.Dir + " is not in this tree"}
}

// againstServe starts Tessera and runs the benchmarks against it, sampling serve's memory;
// it starts nothing when every one is missing.
func (r *runner) againstServe(ctx context.Context, selected []benchmark, missing map[string]bool) []step {
	if !slices.ContainsFunc(selected, func(b benchmark) bool { return !missing[b.Dir] }) {
		var steps []step
		for _, b := range selected {
			steps = append(steps, b.skipped(r.quick))
		}
		return steps
	}
	s, err := r.startServe(ctx)
	if err != nil {
		return []step{{Command: "tessera serve (for " + selected[0].command(r.quick) + ")", Err: err.Error()}}
	}
	defer s.stop(ctx)
	log.Printf("tessera serve on http://%s (fake BTCPay http://%s, database %s): %s resident", s.api, s.fake, serveDatabase, mib(s.startKiB))
	var steps []step
	for _, b := range selected {
		if missing[b.Dir] {
			steps = append(steps, b.skipped(r.quick))
			continue
		}
		args := b.args(r.quick)
		for i, arg := range args {
			args[i] = strings.NewReplacer("{api}", "http://"+s.api, "{fake}", "http://"+s.fake, "{key}", s.key).Replace(arg)
		}
		steps = append(steps, r.program(ctx, b, args, []string{"DATABASE_URL=" + s.databaseURL}, s))
	}
	return steps
}

// args are b's flags at the run's size.
func (b benchmark) args(quick bool) []string {
	if quick {
		return append([]string(nil), b.Quick...)
	}
	return append([]string(nil), b.Full...)
}

// command is how the table names b's run: its program and flags at the run's size.
func (b benchmark) command(quick bool) string {
	return strings.TrimSpace("bench/" + b.Dir + " " + strings.Join(b.args(quick), " "))
}

// databaseURL is DATABASE_URL's server with database name.
func (r *runner) databaseURL(name string) (string, error) {
	u, err := url.Parse(r.base)
	if err != nil {
		return "", fmt.Errorf("DATABASE_URL: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// createDatabase creates database name on the cluster (dropping it first) and returns its URL.
func (r *runner) createDatabase(ctx context.Context, name string) (string, error) {
	admin, err := pgx.Connect(ctx, r.base)
	if err != nil {
		return "", err
	}
	defer func() { _ = admin.Close(context.WithoutCancel(ctx)) }() // an admin connection: its statements' errors are what count
	for _, statement := range []string{"DROP DATABASE IF EXISTS " + name + " WITH (FORCE)", "CREATE DATABASE " + name} {
		if _, err := admin.Exec(ctx, statement); err != nil {
			return "", fmt.Errorf("%s: %w", statement, err)
		}
	}
	return r.databaseURL(name)
}

// dropDatabase drops database name at the end of the run; a failure is only logged, the
// measurements being done.
func (r *runner) dropDatabase(ctx context.Context, name string) {
	ctx = context.WithoutCancel(ctx)
	admin, err := pgx.Connect(ctx, r.base)
	if err == nil {
		_, err = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		err = errors.Join(err, admin.Close(ctx))
	}
	if err != nil {
		log.Printf("drop database %s: %v", name, err)
	}
}

// The databases make bench creates itself.
const (
	tpcbDatabase  = "tessera_bench_pgbench"
	serveDatabase = "tessera_bench"
)

// initTPCB creates TPC-B's database and fills it at pgbenchTPCB's scale; it returns its URL.
func (r *runner) initTPCB(ctx context.Context) (string, error) {
	u, err := r.createDatabase(ctx, tpcbDatabase)
	if err != nil {
		return "", err
	}
	log.Printf("pgbench -i -s %d into %s", pgbenchTPCB.Scale, tpcbDatabase)
	if _, err := pgbench.Exec(ctx, "-i", "-q", "-s", fmt.Sprint(pgbenchTPCB.Scale), u); err != nil {
		return "", err
	}
	return u, nil
}

// tpcb measures the TPC-B limit on database u.
func (r *runner) tpcb(ctx context.Context, u, when string) step {
	seconds := pgbenchTPCB.FullSeconds
	if r.quick {
		seconds = pgbenchTPCB.QuickSecs
	}
	args := []string{"-c16", "-j2", fmt.Sprintf("-T%d", seconds), "-M", "prepared"}
	s := step{Command: fmt.Sprintf("pgbench %s (scale %d), %s", strings.Join(args, " "), pgbenchTPCB.Scale, when)}
	log.Printf("%s", s.Command)
	began := clock.System{}.Now()
	tps, out, err := pgbench.Run(ctx, append(args, u)...)
	s.Elapsed, s.Output = time.Since(began), "```\n"+strings.TrimSpace(out)+"\n```"
	if err != nil {
		s.Err = err.Error()
		return s
	}
	s.Results = []report.Result{{Name: report.TPCB, Value: tps, Unit: "/s"}}
	log.Printf("%s: %.0f/s", report.TPCB, tps)
	return s
}

// postgres is the cluster's server version.
func (r *runner) postgres(ctx context.Context) (string, error) {
	conn, err := pgx.Connect(ctx, r.base)
	if err != nil {
		return "", err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }() // a read: its error is what counts
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "", err
	}
	return "PostgreSQL " + strings.Fields(v)[0], nil
}

// commit is the checked-out commit, marked when the tree has changes.
func commit(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "", fmt.Errorf("git rev-parse: %w", err)
	}
	c := strings.TrimSpace(string(out))
	status, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output()
	if err != nil {
		return "", fmt.Errorf("git status: %w", err)
	}
	if len(strings.TrimSpace(string(status))) > 0 {
		c += " (with uncommitted changes)"
	}
	return c, nil
}

// machine describes the CPUs and memory.
func machine() string {
	model := "unknown CPU"
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(raw)) {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	memory := "unknown"
	if kib, err := procKiB("/proc/meminfo", "MemTotal:"); err == nil {
		memory = fmt.Sprintf("%.1f GiB", float64(kib)/(1024*1024))
	}
	return fmt.Sprintf("%d CPUs (%s), %s of memory", runtime.NumCPU(), model, memory)
}

// loadAverage is the one-minute load average.
func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil { //lint:swallow a machine without /proc/loadavg has its load reported as unknown
		return "unknown"
	}
	return strings.Fields(string(raw))[0]
}

// secretKey is a fresh TESSERA_SECRET_KEY for serve's own database.
func secretKey() string {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails
	return base64.StdEncoding.EncodeToString(key)
}
