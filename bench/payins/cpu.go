package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// clockTicks is Linux's USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
const clockTicks = 100

// cpuSnapshot is the CPU time (user + system, in clock ticks) each process group has used so
// far, by process id: Tessera's serve and the fake BTCPay (found by the port they listen
// on), the Postgres processes of Tessera's cluster (from pg_stat_activity) and this program.
type cpuSnapshot map[int]cpuProcess

// cpuProcess is one process's group and CPU time.
type cpuProcess struct {
	group string
	ticks int64
}

// cpuTake reads the CPU time of serve (listening on api's port), the fake BTCPay (fake's)
// and db's Postgres processes. It fails on no machine: a process it cannot read is left out.
func cpuTake(ctx context.Context, db *pgx.Conn, api, fake string) (cpuSnapshot, error) {
	s := cpuSnapshot{}
	s.add(os.Getpid(), "bench client")
	for _, p := range []struct{ group, addr string }{{"tessera serve", api}, {"tessera fake-btcpay", fake}} {
		if pid := listenerPID(p.addr); pid != 0 {
			s.add(pid, p.group)
		}
	}
	if db == nil {
		return s, nil
	}
	rows, err := db.Query(ctx, "SELECT pid, coalesce(backend_type, '') FROM pg_stat_activity -- bench")
	if err != nil {
		return nil, fmt.Errorf("postgres processes: %w", err)
	}
	type proc struct {
		PID  int
		Kind string
	}
	procs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[proc])
	if err != nil {
		return nil, fmt.Errorf("postgres processes: %w", err)
	}
	for _, p := range procs {
		group := "postgres " + p.Kind
		if p.Kind == "client backend" {
			group = "postgres backends"
		}
		s.add(p.PID, group)
	}
	return s, nil
}

// add records pid's CPU time in group, when /proc can read it.
func (s cpuSnapshot) add(pid int, group string) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil { //lint:swallow a process that is gone or unreadable is left out of the count
		return
	}
	// The fields after the command name (which may hold spaces) start after the last ')'.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	if len(fields) < 13 {
		return
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil { //lint:swallow a malformed stat line is left out of the count
		return
	}
	s[pid] = cpuProcess{group: group, ticks: utime + stime}
}

// cpuPrint writes the CPU milliseconds each group used between before and after, per unit of
// n, and the total; processes in only one snapshot (started or ended between) are left out.
func cpuPrint(w io.Writer, before, after cpuSnapshot, n int, unit string) map[string]float64 {
	ms := map[string]float64{}
	for pid, a := range after {
		if b, ok := before[pid]; ok {
			ms[a.group] += float64(a.ticks-b.ticks) * 1000 / clockTicks
		}
	}
	groups := make([]string, 0, len(ms))
	var total float64
	for g, v := range ms {
		groups = append(groups, g)
		total += v
	}
	slices.SortFunc(groups, func(a, b string) int { return int(ms[b] - ms[a]) })
	_, _ = fmt.Fprintf(w, "CPU per %s (ms; %d %ss):\n", unit, n, unit) //lint:swallow printing to stdout
	for _, g := range groups {
		_, _ = fmt.Fprintf(w, "  %-32s %8.2f  (%.1f s in all)\n", g, ms[g]/float64(n), ms[g]/1000) //lint:swallow printing to stdout
	}
	_, _ = fmt.Fprintf(w, "  %-32s %8.2f  (%.1f s in all)\n", "total", total/float64(n), total/1000) //lint:swallow printing to stdout
	ms["total"] = total
	return ms
}

// listenerPID is the id of the process listening on addr's TCP port on loopback (0 when not
// found): the socket's inode from /proc/net/tcp, then the process holding it.
func listenerPID(addr string) int {
	u, err := url.Parse(addr)
	if err != nil { //lint:swallow an address that does not parse has no listener to count
		return 0
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil { //lint:swallow an address without a port has no listener to count
		return 0
	}
	raw, err := os.ReadFile("/proc/net/tcp")
	if err != nil { //lint:swallow without /proc/net/tcp the process is not counted
		return 0
	}
	var inode string
	for _, line := range strings.Split(string(raw), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 10 || f[3] != "0A" { // 0A: LISTEN
			continue
		}
		local := f[1]
		if p, err := strconv.ParseInt(local[strings.IndexByte(local, ':')+1:], 16, 32); err == nil && int(p) == port {
			inode = f[9]
			break
		}
	}
	if inode == "" {
		return 0
	}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*") //lint:swallow the pattern is valid
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && target == "socket:["+inode+"]" {
			pid, _ := strconv.Atoi(strings.Split(fd, "/")[2]) //lint:swallow the glob matched digits
			return pid
		}
	}
	return 0
}
