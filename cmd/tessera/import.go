package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/upstream"
	"github.com/tessera/tessera/sql"
)

// newImportCommand is `tessera import licenses`: an upstream store's licences, from a file,
// into a tenant, all or nothing.
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
			in := cmd.InOrStdin()
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer func() { _ = f.Close() }() // opened for reading: closing loses nothing
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
	tenant, err := sql.New().TenantGetBySlug(ctx, c.db, tenantSlug)
	if err != nil {
		return fmt.Errorf("tenant %q: %w", tenantSlug, err)
	}
	st := c.step(box)
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
	bar := progress{out: progressOut, total: len(rows), start: clock.System{}.Now()}
	var result upstream.ImportResult
	err = pg.InTx(ctx, c.db, func(tx pgx.Tx) error {
		im, err := upstream.NewImporter(ctx, tx, st, upstream.ImporterParams{TenantID: tenant.ID, StoreID: storeID})
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
	if now := (clock.System{}).Now(); n == p.total || now.Sub(p.drawn) >= 100*time.Millisecond {
		p.drawn = now
		const width = 40
		filled := width * n / max(p.total, 1)
		rate := float64(n) / max(time.Since(p.start).Seconds(), 0.001)
		fmt.Fprintf(p.out, "\r[%s%s] %d/%d %3d%% %.0f rows/s", strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
			n, p.total, 100*n/max(p.total, 1), rate)
	}
}

func (p *progress) done() { fmt.Fprintln(p.out) }
