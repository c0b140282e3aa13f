package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tessera/tessera/bench/internal/report"
	"github.com/tessera/tessera/internal/clock"
)

// A benchmark still running after this long is stopped (SIGTERM) and marked failed, so that
// one that hangs does not hold the whole run.
const (
	benchmarkTimeout      = 45 * time.Minute
	quickBenchmarkTimeout = 10 * time.Minute
)

// program runs benchmark b with args and env and returns its step: its results, stdout and
// memory (serve's when s is set, else the program's own peak).
func (r *runner) program(ctx context.Context, b benchmark, args, env []string, s *server) step {
	st := step{Command: b.command(r.quick)}
	results := filepath.Join(r.out, "results-"+strings.ReplaceAll(strings.TrimPrefix(st.Command, "bench/"), " ", "_")+".jsonl")
	if err := os.Remove(results); err != nil && !errors.Is(err, os.ErrNotExist) {
		st.Err = err.Error()
		return st
	}
	log.Printf("%s", st.Command)
	var stdout bytes.Buffer
	stderr := &tail{w: os.Stderr}
	limit := benchmarkTimeout
	if r.quick {
		limit = quickBenchmarkTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(r.bin, b.Dir), args...)
	cmd.Env = append(append(os.Environ(), env...), report.ResultsEnv+"="+results)
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	began := clock.System{}.Now()
	var sampled *sampler
	err := cmd.Start()
	if err == nil {
		if s != nil {
			sampled = sample(s.serve.Process.Pid)
		}
		err = cmd.Wait()
	}
	st.Elapsed, st.Output = time.Since(began), stdout.String()
	switch {
	case sampled != nil:
		st.Memory = sampled.stop("tessera serve")
		st.Memory.StartedKiB = s.startKiB
	case cmd.ProcessState != nil:
		if usage, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			st.Memory = &memory{Process: "bench/" + b.Dir + " itself", PeakKiB: usage.Maxrss}
		}
	}
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("stopped after %s: %w", limit, err)
		}
		st.Err = strings.TrimSuffix(fmt.Sprintf("%v: %s", err, stderr.last()), ": ")
	}
	if st.Results, err = readResults(results); err != nil {
		st.Err = strings.TrimPrefix(st.Err+"; "+err.Error(), "; ")
	}
	log.Printf("%s: %d results in %s, %s", st.Command, len(st.Results), st.Elapsed.Round(time.Second), st.Memory)
	return st
}

// readResults reads the JSON lines report.Add appended to path (none when it does not exist).
func readResults(path string) ([]report.Result, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read only: the scan's error is what counts
	var results []report.Result
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		var res report.Result
		if err := json.Unmarshal(lines.Bytes(), &res); err != nil {
			return results, fmt.Errorf("%s: %q: %w", path, lines.Text(), err)
		}
		results = append(results, res)
	}
	return results, lines.Err()
}

// tail passes what is written to w and keeps the last lines, for a failure's message.
type tail struct {
	w    io.Writer
	mu   sync.Mutex
	kept []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.kept = append(t.kept, p...)
	if len(t.kept) > 4096 {
		t.kept = t.kept[len(t.kept)-4096:]
	}
	t.mu.Unlock()
	return t.w.Write(p)
}

// last is the last three lines written.
func (t *tail) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(t.kept)), "\n")
	return strings.Join(lines[max(0, len(lines)-3):], " / ")
}

// sampler reads a process's resident set every 200 ms until stopped.
type sampler struct {
	done      chan struct{}
	finished  chan struct{}
	pid       int
	peak, end int64
}

// sample starts sampling process pid's VmRSS.
func sample(pid int) *sampler {
	s := &sampler{done: make(chan struct{}), finished: make(chan struct{}), pid: pid}
	go func() {
		defer close(s.finished)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			s.read()
			select {
			case <-s.done:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *sampler) read() {
	kib, err := procKiB(fmt.Sprintf("/proc/%d/status", s.pid), "VmRSS:")
	if err != nil { //lint:swallow a process that has exited has no resident set: the last sample stands
		return
	}
	s.peak, s.end = max(s.peak, kib), kib
}

// stop takes a last sample and returns the peak and last resident sets of process.
func (s *sampler) stop(process string) *memory {
	close(s.done)
	<-s.finished
	s.read()
	return &memory{Process: process, PeakKiB: s.peak, EndKiB: s.end}
}

// procKiB reads the "field: N kB" line of a /proc file.
func procKiB(path, field string) (int64, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(raw)) {
		if rest, ok := strings.CutPrefix(line, field); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s has no %s", path, field)
}

// server is Tessera started as make run starts it: the fake BTCPay and serve, with an admin key.
type server struct {
	runner         *runner
	api, fake, key string
	databaseURL    string
	startKiB       int64
	serve          *exec.Cmd
	started        []*exec.Cmd
	logs           []*os.File
}

// startServe migrates and bootstraps database serveDatabase and starts the fake BTCPay and
// `tessera serve` on free loopback ports, with make run's settings and the validation rate
// limits lifted (they would answer 429 under load).
func (r *runner) startServe(ctx context.Context) (s *server, err error) {
	s = &server{runner: r}
	defer func() {
		if err != nil { //lint:swallow the error is returned; here only what was started is stopped
			s.stop(ctx)
		}
	}()
	if s.databaseURL, err = r.createDatabase(ctx, serveDatabase); err != nil {
		return s, err
	}
	if s.api, err = freeAddr(); err != nil {
		return s, err
	}
	if s.fake, err = freeAddr(); err != nil {
		return s, err
	}
	env := append(os.Environ(),
		"DATABASE_URL="+s.databaseURL,
		"TESSERA_SECRET_KEY="+secretKey(),
		"TESSERA_ADDR="+s.api,
		"TESSERA_ALLOW_PRIVATE_NETWORKS=true",
		"TESSERA_BTCPAY_URL=http://"+s.fake,
		"TESSERA_BTCPAY_STORE_ID=fake-store",
		"TESSERA_BTCPAY_API_KEY=fake-api-key",
		"TESSERA_BTCPAY_WEBHOOK_SECRET=fake-webhook-secret",
		"TESSERA_LOG_LEVEL=warn",
		"TESSERA_VALIDATE_PER_KEY=1000000", "TESSERA_VALIDATE_KEY_BURST=1000000",
		"TESSERA_VALIDATE_PER_CLIENT=1000000", "TESSERA_VALIDATE_CLIENT_BURST=1000000",
	)
	tessera := filepath.Join(r.bin, "tessera")
	if err := s.start(ctx, env, filepath.Join(r.out, "fake-btcpay.log"), tessera, "fake-btcpay", "--addr", s.fake, "--webhook-url", "http://"+s.api+"/v1/providers/btcpay/webhook"); err != nil {
		return s, err
	}
	keyFile := filepath.Join(r.out, "admin-key")
	if err := os.Remove(keyFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return s, err
	}
	for _, args := range [][]string{{"migrate"}, {"bootstrap", "--key-file", keyFile}} {
		cmd := exec.CommandContext(ctx, tessera, args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return s, fmt.Errorf("tessera %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return s, err
	}
	s.key = strings.TrimSpace(string(key))
	if err := s.start(ctx, env, filepath.Join(r.out, "serve.log"), tessera, "serve"); err != nil {
		return s, err
	}
	s.serve = s.started[len(s.started)-1]
	if err := ready(ctx, "http://"+s.api+"/readyz"); err != nil {
		return s, fmt.Errorf("%w (log: %s)", err, filepath.Join(r.out, "serve.log"))
	}
	s.startKiB, err = procKiB(fmt.Sprintf("/proc/%d/status", s.serve.Process.Pid), "VmRSS:")
	return s, err
}

// start starts tessera with args in the background, its output in logPath.
func (s *server) start(ctx context.Context, env []string, logPath, tessera string, args ...string) error {
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	s.logs = append(s.logs, f)
	cmd := exec.CommandContext(ctx, tessera, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, f, f
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("tessera %s: %w", strings.Join(args, " "), err)
	}
	s.started = append(s.started, cmd)
	return nil
}

// stop stops serve and the fake BTCPay with SIGTERM (as make run's Ctrl-C does), waits for
// them and drops serve's database; failures are logged, the measurements being done.
func (s *server) stop(ctx context.Context) {
	for i := len(s.started) - 1; i >= 0; i-- {
		cmd := s.started[i]
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			log.Printf("stop %s: %v", cmd, err)
		}
		var exit *exec.ExitError
		if err := cmd.Wait(); err != nil && !errors.As(err, &exit) {
			log.Printf("stop %s: %v", cmd, err)
		}
	}
	for _, f := range s.logs {
		if err := f.Close(); err != nil {
			log.Printf("close %s: %v", f.Name(), err)
		}
	}
	if s.databaseURL != "" {
		s.runner.dropDatabase(ctx, serveDatabase)
	}
}

// ready waits up to a minute for url to answer 200.
func ready(ctx context.Context, url string) error {
	deadline := clock.System{}.Now().Add(time.Minute)
	for (clock.System{}).Now().Before(deadline) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if res, err := http.DefaultClient.Do(req); err == nil {
			_ = res.Body.Close() // only the status matters
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not answer 200 within a minute", url)
}

// freeAddr returns a loopback address with a port nothing listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}
