package main

import "github.com/tessera/tessera/bench/internal/report"

// benchmark is one program make bench runs: bench/<Dir> with Full's flags (-quick: Quick's).
// Serve benchmarks run against the `tessera serve` make bench starts, with DATABASE_URL naming
// serve's database, and {api}, {fake} and {key} in their flags replaced by serve's URL, the
// fake BTCPay's URL and an admin key of the demo tenant; the others get DATABASE_URL naming
// the cluster and create their own database on it.
type benchmark struct {
	Dir         string
	Full, Quick []string
	Serve       bool
}

// benchmarks are make bench's invocations, in the order they run (pgbench's TPC-B runs before
// the first and after the last). Full sizes keep the whole run under about 30 minutes on the
// 2-core development machine; Quick's (BENCH_QUICK=1) about 5 minutes, for a smoke run. Each
// program's flags are documented at the top of its main.go.
var benchmarks = []benchmark{
	{Dir: "revocation",
		Full:  []string{"-licenses", "1000000", "-owners", "200000", "-runs", "5"},
		Quick: []string{"-licenses", "20000", "-owners", "4000", "-runs", "3"}},
	{Dir: "referrals",
		Full:  []string{"-customers", "1000000", "-referrers", "200000", "-runs", "3", "-events", "200", "-sample", "0", "-literal-sample", "0"},
		Quick: []string{"-customers", "20000", "-referrers", "4000", "-runs", "1", "-events", "50", "-sample", "0", "-literal-sample", "0"}},
	{Dir: "renewals",
		Full:  []string{"-subscriptions", "200000", "-runs", "5"},
		Quick: []string{"-subscriptions", "10000", "-runs", "3"}},
	{Dir: "renewals",
		Full:  []string{"-subscriptions", "10000", "-throughput-workers", "20"},
		Quick: []string{"-subscriptions", "1000", "-throughput-workers", "20"}},
	{Dir: "sandbox",
		Full:  []string{"-subscriptions", "10000", "-live-subscriptions", "0"},
		Quick: []string{"-subscriptions", "500", "-live-subscriptions", "0"}},
	{Dir: "sandboxdata",
		Full:  []string{"-customers", "10000"},
		Quick: []string{"-customers", "500"}},
	{Dir: "webhooks",
		Full:  []string{"-variant", "dead", "-queued", "100000", "-events", "150"},
		Quick: []string{"-variant", "dead", "-queued", "5000", "-events", "20"}},
	{Dir: "webhooks",
		Full:  []string{"-variant", "hanging", "-a-endpoints", "20", "-queued", "100000", "-events", "150"},
		Quick: []string{"-variant", "hanging", "-a-endpoints", "20", "-queued", "5000", "-events", "20"}},
	{Dir: "payins", Serve: true,
		Full:  []string{"-api", "{api}", "-fake", "{fake}", "-key", "{key}", "-n", "2000", "-c", "16"},
		Quick: []string{"-api", "{api}", "-fake", "{fake}", "-key", "{key}", "-n", "200", "-c", "16"}},
	{Dir: "validate", Serve: true,
		Full:  []string{"-api", "{api}", "-fake", "{fake}", "-key", "{key}", "-d", "20s", "-load", "-payins", "1000"},
		Quick: []string{"-api", "{api}", "-fake", "{fake}", "-key", "{key}", "-d", "5s", "-load", "-payins", "200"}},
}

// pgbenchTPCB is how the TPC-B limit is measured: pgbench -i at this scale into its own
// database, then 16 clients on 2 threads with prepared statements for this many seconds.
var pgbenchTPCB = struct {
	Scale                  int
	FullSeconds, QuickSecs int
}{Scale: 16, FullSeconds: 30, QuickSecs: 10}

// goal is what the issue asks of a result: a ratio to its limit of at least MinRatio, a value
// below Below, or a value at most AtMost times result Of's.
type goal struct {
	MinRatio, Below, AtMost float64
	Of                      string
}

// goals are the goals by the name of the result they apply to. The table shows a
// goal next to its result, and lists those whose result the run did not produce.
var goals = map[string]goal{
	"PayIns settled":                             {MinRatio: 0.25},
	"renewals":                                   {MinRatio: 0.25},
	"validations, 32 connections":                {MinRatio: 0.60},
	"validation p99, 8 connections":              {Below: 5},
	"validation p99, 8 connections, payment run": {AtMost: 2, Of: "validation p99, 8 connections"},
	"Revocation worker's pick (all tenants, limit 1) at 1000000 licences, median": {Below: 10},
	"referral full recompute at 1M customers, first run":                          {Below: 3},
	"referral full recompute at 1M customers, nothing changed":                    {Below: 3},
}

// limits are the results measured by pgbench that ratios are taken against.
var limits = []string{report.TPCB, report.ValidateSQL}
