package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/spf13/cobra"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/fakestore"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/upstream"
	"github.com/tessera/tessera/jobs"
	"github.com/tessera/tessera/sql"
)

// revocation returns the check loop's configuration.
func (cfg Config) revocation() jobs.RevocationConfig {
	return jobs.RevocationConfig{
		Interval: cfg.RevocationInterval, PerFiring: cfg.RevocationPerFiring,
		ErrorBackoff: cfg.RevocationErrorBackoff, Timeout: cfg.RevocationTimeout,
		Schedule: upstream.Schedule{
			MinInterval: cfg.RevocationMinInterval,
			Weights: upstream.Weights{
				RevokedCount: cfg.RevocationWeightRevokedCount, RecentRevocation: cfg.RevocationWeightRecentRevocation,
				RevokedHours: cfg.RevocationWeightRevokedHours, OwnerHours: cfg.RevocationWeightOwnerHours,
				LicenseAge: cfg.RevocationWeightLicenseAge, Staleness: cfg.RevocationWeightStaleness,
			},
		},
	}
}

// revocationProblems validates the revocation settings.
func (cfg Config) revocationProblems() []error {
	var problems []error
	for name, d := range map[string]time.Duration{
		"TESSERA_REVOCATION_INTERVAL": cfg.RevocationInterval, "TESSERA_REVOCATION_MIN_INTERVAL": cfg.RevocationMinInterval,
		"TESSERA_REVOCATION_ERROR_BACKOFF": cfg.RevocationErrorBackoff, "TESSERA_REVOCATION_TIMEOUT": cfg.RevocationTimeout,
	} {
		if d <= 0 {
			problems = append(problems, fmt.Errorf("%s must be positive", name))
		}
	}
	if cfg.RevocationPerFiring < 1 || cfg.RevocationPerFiring > 1000 {
		problems = append(problems, fmt.Errorf("TESSERA_REVOCATION_PER_FIRING must be between 1 and 1000, not %d", cfg.RevocationPerFiring))
	}
	if err := cfg.revocation().Schedule.Weights.Validate(); err != nil {
		problems = append(problems, errors.New("TESSERA_REVOCATION_WEIGHT_* must be at least 0"))
	}
	return problems
}

func newImportCommand() *cobra.Command {
	imp := &cobra.Command{Use: "import", Short: "Import data from elsewhere"}
	var tenantSlug, storeID string
	licenses := &cobra.Command{
		Use:   "licenses --tenant SLUG --store STORE_ID FILE",
		Short: "Import a store's licences from an NDJSON or JSON-array file, all or nothing",
		Long: "Reads FILE (NDJSON, one row per line, or a JSON array; - is stdin) with the rows of\n" +
			"POST /v1/admin/upstream-stores/{id}/imports, validates every row first (printing each\n" +
			"invalid one), then imports them in one transaction with a progress bar on stderr.\n" +
			"Re-importing updates licences, never duplicates them.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := uuid.Parse(storeID)
			if err != nil {
				return fmt.Errorf("--store must be a store id (uuid): %w", err)
			}
			var in io.Reader = cmd.InOrStdin()
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			return withDB(cmd.Context(), func(c *cli) error {
				return importLicenses(cmd.Context(), c, tenantSlug, store, in, cmd.OutOrStdout(), cmd.ErrOrStderr())
			})
		},
	}
	licenses.Flags().StringVar(&tenantSlug, "tenant", "", "the tenant's slug (required)")
	licenses.Flags().StringVar(&storeID, "store", "", "the upstream store's id (required)")
	_ = licenses.MarkFlagRequired("tenant") // fails only for an undefined flag
	_ = licenses.MarkFlagRequired("store")
	imp.AddCommand(licenses)
	return imp
}

// importLicenses validates and imports rows, drawing progress on progressOut.
func importLicenses(ctx context.Context, c *cli, tenantSlug string, storeID uuid.UUID, in io.Reader, out, progressOut io.Writer) error {
	box, err := c.cfg.box()
	if err != nil {
		return err
	}
	tenant, err := sql.New().TenantGetBySlug(ctx, c.pool, tenantSlug)
	if err != nil {
		return fmt.Errorf("tenant %q: %w", tenantSlug, core.DBError(err))
	}
	jobsClient, err := river.NewClient(riverpgxv5.New(nil), &river.Config{}) // insert-only: imports enqueue nothing today
	if err != nil {
		return err
	}
	st := core.Step{Now: c.clock.Now(), Actor: cliActor(), Box: box, Jobs: jobsClient}
	rows, err := upstream.ParseRows(bufio.NewReader(in), st.Now)
	var rowErrs upstream.RowErrors
	if errors.As(err, &rowErrs) {
		for _, re := range rowErrs {
			fmt.Fprintf(progressOut, "row %d: %s: %s\n", re.Row, re.Field, re.Message)
		}
		return fmt.Errorf("%d invalid rows; nothing was imported", len(rowErrs))
	} else if err != nil {
		return err
	}
	bar := progress{out: progressOut, total: len(rows), start: time.Now()}
	var result upstream.ImportResult
	err = pg.InTx(ctx, c.pool, func(tx pgx.Tx) error {
		im, err := upstream.NewImporter(ctx, tx, st, tenant.ID, storeID)
		if err != nil {
			return err
		}
		for i, r := range rows {
			if err := im.Import(ctx, i, r); err != nil {
				return err
			}
			bar.set(i + 1)
		}
		result = im.Result
		return im.Finish(ctx)
	})
	bar.done()
	if err != nil {
		return fmt.Errorf("import (nothing was written): %w", err)
	}
	_, err = fmt.Fprintf(out, "created %d, updated %d, unchanged %d\n", result.Created, result.Updated, result.Unchanged)
	return err
}

// progress draws a progress bar, at most every 100 ms.
type progress struct {
	out   io.Writer
	total int
	start time.Time
	drawn time.Time
}

func (p *progress) set(n int) {
	if now := time.Now(); n == p.total || now.Sub(p.drawn) >= 100*time.Millisecond {
		p.drawn = now
		const width = 40
		filled := width * n / max(p.total, 1)
		rate := float64(n) / max(time.Since(p.start).Seconds(), 0.001)
		fmt.Fprintf(p.out, "\r[%s%s] %d/%d %3d%% %.0f rows/s", strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
			n, p.total, 100*n/max(p.total, 1), rate)
	}
}

func (p *progress) done() { fmt.Fprintln(p.out) }

func newFakeStoreCommand() *cobra.Command {
	var addr, apiKey, export string
	var seed int
	cmd := &cobra.Command{
		Use:   "fake-store",
		Short: "Serve a fake Jinxxy-style store for demos (no database)",
		Long: "Serves GET /licenses/{id} (200 while a licence exists, 404 once removed, 401 for a wrong\n" +
			"x-api-key) on --addr. PUT and DELETE /_fake/licenses/{id} add and remove licences; GET\n" +
			"/_fake/licenses lists them with the request count. --seed makes licences lic-0001...;\n" +
			"--export writes them as an import file for `tessera import licenses`.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store := fakestore.NewServer(apiKey)
			if export != "" {
				if err := writeFakeExport(export, seed, store); err != nil {
					return err
				}
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", addr, err)
			}
			srv := &http.Server{Handler: store, ReadHeaderTimeout: 10 * time.Second}
			go func() {
				<-cmd.Context().Done()
				_ = srv.Close()
			}()
			fmt.Fprintf(cmd.OutOrStdout(), "fake store on http://%s (x-api-key %s), %d licences\n", ln.Addr(), apiKey, len(store.IDs()))
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:9090", "listen address")
	cmd.Flags().StringVar(&apiKey, "api-key", "demo-store-key", "the x-api-key the store accepts")
	cmd.Flags().IntVar(&seed, "seed", 0, "how many licences to create (lic-0001...)")
	cmd.Flags().StringVar(&export, "export", "", "write the seeded licences as NDJSON import rows to this file")
	return cmd
}

// writeFakeExport seeds n licences of 10 owners, acquired over the past n days, and writes
// them as import rows.
func writeFakeExport(path string, n int, store *fakestore.Server) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	now := clock.System{}.Now().Truncate(time.Second)
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("lic-%04d", i)
		store.Add(id)
		row := upstream.Row{ExternalLicenseID: id, Owner: fmt.Sprintf("user-%02d", i%10), AcquiredAt: now.Add(-time.Duration(i) * 24 * time.Hour),
			Activations: []upstream.Activation{{Fingerprint: "fp-" + id}}}
		if err := enc.Encode(row); err != nil {
			return errors.Join(err, f.Close())
		}
	}
	return f.Close()
}
