package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// clockTicks is the kernel's USER_HZ: /proc/<pid>/stat counts CPU time in these.
const clockTicks = 100

// cpuTimes is the CPU time (user + system) spent so far by this process (Tessera's workers,
// the River client and the fake BTCPay run in it) and by the Postgres cluster serving the
// pool (the postmaster and every process it started, with the children it reaped).
type cpuTimes struct {
	Process  time.Duration
	Postgres time.Duration
}

// cpuNow reads cpuTimes; postmaster is the cluster's postmaster pid (0: not local, not read).
func cpuNow(postmaster int) (cpuTimes, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuTimes{}, err
	}
	t := cpuTimes{Process: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	if postmaster == 0 {
		return t, nil
	}
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	var ticks int64
	for _, path := range stats {
		f, err := procStat(path)
		if err != nil { //lint:swallow a process that exited between the glob and the read spent nothing more
			continue
		}
		switch {
		case f.pid == postmaster:
			ticks += f.utime + f.stime + f.cutime + f.cstime
		case f.ppid == postmaster:
			ticks += f.utime + f.stime
		}
	}
	t.Postgres = time.Duration(ticks) * time.Second / clockTicks
	return t, nil
}

// statFields are the fields of /proc/<pid>/stat that cpuNow uses.
type statFields struct {
	pid, ppid                    int
	utime, stime, cutime, cstime int64
}

// procStat parses /proc/<pid>/stat: the fields after the command's closing parenthesis.
func procStat(path string) (statFields, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return statFields{}, err
	}
	s := string(raw)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 1 || closing < open {
		return statFields{}, fmt.Errorf("%s: no command", path)
	}
	rest := strings.Fields(s[closing+1:]) // rest[0] is field 3 (state)
	if len(rest) < 15 {
		return statFields{}, fmt.Errorf("%s: %d fields", path, len(rest))
	}
	var f statFields
	if f.pid, err = strconv.Atoi(strings.TrimSpace(s[:open])); err != nil {
		return statFields{}, err
	}
	if f.ppid, err = strconv.Atoi(rest[1]); err != nil {
		return statFields{}, err
	}
	for i, dst := range []*int64{&f.utime, &f.stime, &f.cutime, &f.cstime} {
		if *dst, err = strconv.ParseInt(rest[11+i], 10, 64); err != nil {
			return statFields{}, err
		}
	}
	return f, nil
}

// postmasterPID is the pid of the postmaster of the pool's server when it runs on this
// machine (the parent of a backend whose /proc entry exists), else 0.
func postmasterPID(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var backend int
	if err := pool.QueryRow(ctx, "SELECT pg_backend_pid() -- bench").Scan(&backend); err != nil {
		return 0, err
	}
	f, err := procStat(fmt.Sprintf("/proc/%d/stat", backend))
	if errors.Is(err, fs.ErrNotExist) { // a server on another machine: its CPU is not counted here
		return 0, nil
	}
	return f.ppid, err
}
