package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// The configuration tests set environment variables, so none of them is parallel.

func TestConfigRescueStuckJobsAfter(t *testing.T) {
	for _, tt := range []struct {
		name    string
		env     map[string]string
		want    time.Duration
		wantErr string
	}{
		// The longest default timeout is revocation.check's: 1 × (10 s + 5 s) + 1 m.
		{name: "DefaultIsTheLongestTimeoutPlusAMargin", want: 2*time.Minute + 20*time.Second},
		{name: "Set", env: map[string]string{"TESSERA_RESCUE_STUCK_JOBS_AFTER": "10m"}, want: 10 * time.Minute},
		{
			name: "ShortTimeoutsGiveAShortDefault",
			env:  map[string]string{"TESSERA_JOB_TIMEOUT": "2s", "TESSERA_WEBHOOK_TIMEOUT": "1s", "TESSERA_REVOCATION_TIMEOUT": "1s"},
			want: time.Minute + 8*time.Second,
		},
		{
			name: "SetJustAboveTheLongestTimeout",
			env: map[string]string{"TESSERA_JOB_TIMEOUT": "2s", "TESSERA_WEBHOOK_TIMEOUT": "1s", "TESSERA_REVOCATION_TIMEOUT": "1s",
				"TESSERA_RESCUE_STUCK_JOBS_AFTER": "9s"},
			want: 9 * time.Second,
		},
		{
			name:    "NotAboveTheLongestTimeout",
			env:     map[string]string{"TESSERA_RESCUE_STUCK_JOBS_AFTER": "80s"},
			wantErr: "TESSERA_RESCUE_STUCK_JOBS_AFTER (1m20s) must be above the longest job timeout (1m20s,",
		},
		{
			name:    "LongerWebhookTimeoutRaisesTheBound",
			env:     map[string]string{"TESSERA_WEBHOOK_TIMEOUT": "5m", "TESSERA_RESCUE_STUCK_JOBS_AFTER": "10m"},
			wantErr: "TESSERA_RESCUE_STUCK_JOBS_AFTER (10m0s) must be above the longest job timeout (11m0s,",
		},
		{
			name:    "MoreChecksPerFiringRaiseTheBound",
			env:     map[string]string{"TESSERA_REVOCATION_PER_FIRING": "10", "TESSERA_RESCUE_STUCK_JOBS_AFTER": "3m"},
			wantErr: "TESSERA_RESCUE_STUCK_JOBS_AFTER (3m0s) must be above the longest job timeout (3m30s,",
		},
		{name: "NegativeJobTimeout", env: map[string]string{"TESSERA_JOB_TIMEOUT": "-1s"}, wantErr: "TESSERA_JOB_TIMEOUT must be positive"},
		{name: "NegativeBound", env: map[string]string{"TESSERA_RESCUE_STUCK_JOBS_AFTER": "-1s"}, wantErr: "TESSERA_RESCUE_STUCK_JOBS_AFTER must be positive"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := loadConfig()
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			got, err := cfg.rescueStuckJobsAfter()
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestConfigMetricsAddr(t *testing.T) {
	//nolint:paralleltest // reads the environment, which its sibling sets with t.Setenv
	t.Run("Default", func(t *testing.T) {
		cfg, err := loadConfig()
		require.NoError(t, err)
		require.Equal(t, ":9091", cfg.MetricsAddr)
		require.Equal(t, ":8080", cfg.Addr, "serve keeps its metrics on the API's address")
	})
	t.Run("Set", func(t *testing.T) {
		t.Setenv("TESSERA_METRICS_ADDR", "127.0.0.1:9100")
		cfg, err := loadConfig()
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1:9100", cfg.MetricsAddr)
	})
}

func TestConfigOperator(t *testing.T) {
	for _, tt := range []struct {
		name, wantUser, wantErr string
		env                     map[string]string
	}{
		{name: "DefaultUser", wantUser: "operator"},
		{name: "EmptyUserIsTheDefault", env: map[string]string{"TESSERA_OPERATOR_USER": ""}, wantUser: "operator"},
		{name: "User", env: map[string]string{"TESSERA_OPERATOR_USER": "ops", "TESSERA_OPERATOR_PASSWORD": "0123456789abcdef"}, wantUser: "ops"},
		{name: "ShortPassword", env: map[string]string{"TESSERA_OPERATOR_PASSWORD": "0123456789abcde"}, wantErr: "TESSERA_OPERATOR_PASSWORD must be at least 16 characters"},
		{name: "UserWithColon", env: map[string]string{"TESSERA_OPERATOR_USER": "a:b"}, wantErr: `TESSERA_OPERATOR_USER must not contain a colon or line break, not "a:b"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := loadConfig()
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantUser, cfg.OperatorUser)
		})
	}
}

func TestConfigPprofAddr(t *testing.T) {
	for _, tt := range []struct {
		addr, wantErr string
	}{
		{addr: ""},
		{addr: "127.0.0.1:6060"},
		{addr: "[::1]:6060"},
		{addr: "localhost:6060"},
		{addr: ":6060", wantErr: `TESSERA_PPROF_ADDR must be a loopback address (127.0.0.1:6060), not ":6060"`},
		{addr: "0.0.0.0:6060", wantErr: "TESSERA_PPROF_ADDR must be a loopback address"},
		{addr: "10.0.0.1:6060", wantErr: "TESSERA_PPROF_ADDR must be a loopback address"},
		{addr: "127.0.0.1", wantErr: "TESSERA_PPROF_ADDR must be a loopback address"},
	} {
		t.Run(tt.addr, func(t *testing.T) {
			t.Setenv("TESSERA_PPROF_ADDR", tt.addr)
			cfg, err := loadConfig()
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.addr, cfg.PprofAddr)
		})
	}
}

// With TESSERA_PPROF_ADDR set, a process serves its runtime profiles there until stopped.
func TestServePprof(t *testing.T) {
	t.Parallel()
	addr, stop, err := servePprof(Config{PprofAddr: "127.0.0.1:0"}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "goroutine profile:")

	stop()
	_, err = net.Dial("tcp", addr)
	require.Error(t, err, "stopped")
}

func TestConfigReadReplica(t *testing.T) {
	for _, tt := range []struct {
		name, wantErr string
		env           map[string]string
		wantMaxLag    time.Duration
	}{
		{name: "Default", wantMaxLag: time.Second},
		{name: "Set", env: map[string]string{"TESSERA_READ_DATABASE_URL": "postgres://replica/tessera", "TESSERA_READ_MAX_LAG": "5s"}, wantMaxLag: 5 * time.Second},
		{name: "BoundNotAboveTheCheckInterval", env: map[string]string{"TESSERA_READ_MAX_LAG": "250ms"}, wantErr: "TESSERA_READ_MAX_LAG must be above 250ms, the lag check's interval, not 250ms"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := loadConfig()
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantMaxLag, cfg.ReadMaxLag)
			require.Equal(t, tt.env["TESSERA_READ_DATABASE_URL"], cfg.ReadDatabaseURL)
		})
	}
}

func TestConfigDBPooler(t *testing.T) {
	const url = "postgres://tessera@127.0.0.1:6432/tessera"
	for _, tt := range []struct {
		name, pooler, url, wantErr string
		want                       pgx.QueryExecMode
	}{
		{name: "DefaultKeepsPgxDefault", url: url, want: pgx.QueryExecModeCacheStatement},
		{name: "NoneKeepsTheURLMode", pooler: "none", url: url + "?default_query_exec_mode=describe_exec", want: pgx.QueryExecModeDescribeExec},
		{name: "TransactionDescribesOnce", pooler: "transaction", url: url, want: pgx.QueryExecModeCacheDescribe},
		{name: "TransactionReplacesNamedStatements", pooler: "transaction", url: url + "?default_query_exec_mode=cache_statement", want: pgx.QueryExecModeCacheDescribe},
		{name: "TransactionReplacesTwoRoundTrips", pooler: "transaction", url: url + "?default_query_exec_mode=describe_exec", want: pgx.QueryExecModeCacheDescribe},
		{name: "TransactionKeepsCacheDescribe", pooler: "transaction", url: url + "?default_query_exec_mode=cache_describe", want: pgx.QueryExecModeCacheDescribe},
		{name: "ExecRefused", pooler: "transaction", url: url + "?default_query_exec_mode=exec", wantErr: "default_query_exec_mode=exec sends jsonb parameters as bytea"},
		{name: "SimpleProtocolRefused", url: url + "?default_query_exec_mode=simple_protocol", wantErr: "default_query_exec_mode=simple_protocol sends jsonb parameters as bytea"},
		{name: "UnknownPooler", pooler: "pgbouncer", url: url, wantErr: `TESSERA_DB_POOLER must be none or transaction, not "pgbouncer"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("DATABASE_URL", tt.url)
			if tt.pooler != "" {
				t.Setenv("TESSERA_DB_POOLER", tt.pooler)
			}
			cfg, err := loadConfig()
			var pc *pgxpool.Config
			if err == nil {
				pc, err = cfg.poolConfig()
			}
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, pc.ConnConfig.DefaultQueryExecMode)
		})
	}
}

func TestConfigFetchCooldown(t *testing.T) {
	for _, tt := range []struct {
		name, value, wantErr string
		want                 time.Duration
	}{
		{name: "Default", want: 5 * time.Millisecond},
		{name: "Set", value: "50ms", want: 50 * time.Millisecond},
		{name: "TooShort", value: "100us", wantErr: "TESSERA_FETCH_COOLDOWN must be between 1ms and 1s, not 100µs"},
		{name: "TooLong", value: "2s", wantErr: "TESSERA_FETCH_COOLDOWN must be between 1ms and 1s, not 2s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.value != "" {
				t.Setenv("TESSERA_FETCH_COOLDOWN", tt.value)
			}
			cfg, err := loadConfig()
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, cfg.FetchCooldown)
		})
	}
}

func TestConfigWorkersWhileValidating(t *testing.T) {
	for _, tt := range []struct {
		name, value, wantErr string
		want                 int
	}{
		{name: "Default", want: 2},
		{name: "Set", value: "10", want: 10},
		{name: "Zero", value: "0", wantErr: "TESSERA_WORKERS_WHILE_VALIDATING must be at least 1, not 0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.value != "" {
				t.Setenv("TESSERA_WORKERS_WHILE_VALIDATING", tt.value)
			}
			cfg, err := loadConfig()
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, cfg.WorkersWhileValidating)
		})
	}
}
