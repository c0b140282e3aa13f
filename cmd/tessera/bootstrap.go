package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/sql"
)

func newBootstrapCommand() *cobra.Command {
	var slug, keyFile string
	cmd := &cobra.Command{
		Use:   "bootstrap [--slug demo] [--key-file PATH]",
		Short: "Create a demo tenant and admin key when the database has no tenant (make run does this)",
		Long: "bootstrap creates a tenant and an admin API key when the database has no tenant yet, and\n" +
			"prints, in one block, the key (shown once), the docs URL and what to try next; with\n" +
			"--key-file it also writes the key to that file (mode 0600; make run writes\n" +
			".tessera/admin-key, which examples/ read). With a tenant already there it changes nothing.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return withDB(ctx, func(c *cli) error {
				box, err := c.cfg.box()
				if err != nil {
					return err
				}
				return pg.InTx(ctx, c.db, func(tx pgx.Tx) error {
					existing, err := sql.New().TenantGetFirst(ctx, tx)
					switch {
					case err == nil:
						return printBootstrap(cmd.OutOrStdout(), c.cfg.Addr, existing.Slug, "", keyFile)
					case !errors.Is(err, core.ErrNotFound):
						return fmt.Errorf("look for a tenant: %w", err)
					}
					st := c.step(box)
					tenant, err := core.TenantCreate(ctx, tx, st, core.TenantCreateParams{Slug: slug, Name: "Demo"})
					if err != nil {
						return err
					}
					_, secret, err := core.APIKeyCreate(ctx, tx, st, core.APIKeyCreateParams{TenantID: tenant.ID, Name: "demo admin"})
					if err != nil {
						return err
					}
					if keyFile != "" {
						// Written before the commit: a key that could not be saved is never created.
						if err := os.MkdirAll(filepath.Dir(keyFile), 0o700); err != nil {
							return fmt.Errorf("--key-file: %w", err)
						}
						if err := os.WriteFile(keyFile, []byte(secret+"\n"), 0o600); err != nil {
							return fmt.Errorf("--key-file: %w", err)
						}
					}
					return printBootstrap(cmd.OutOrStdout(), c.cfg.Addr, tenant.Slug, secret, keyFile)
				})
			})
		},
	}
	cmd.Flags().StringVar(&slug, "slug", "demo", "the demo tenant's slug")
	cmd.Flags().StringVar(&keyFile, "key-file", "", "also write a new admin key to this file (mode 0600)")
	return cmd
}

// printBootstrap prints what bootstrap did and what to do next as one block that stands out
// from the logs around it: secret is the new admin key, empty when the tenant already existed.
func printBootstrap(out io.Writer, addr, slug, secret, keyFile string) error {
	rule := strings.Repeat("=", 72)
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s\n", rule)
	if secret != "" {
		fmt.Fprintf(&b, "Created tenant %q.\nAdmin API key (shown once): %s\n", slug, secret)
		if keyFile != "" {
			fmt.Fprintf(&b, "  (also written to %s)\n", keyFile)
		}
	} else {
		fmt.Fprintf(&b, "Tenant %q exists; its first admin key was shown when it was created", slug)
		if keyFile != "" {
			fmt.Fprintf(&b, " (and written to %s)", keyFile)
		}
		b.WriteString(".\n")
	}
	fmt.Fprintf(&b, "API docs: %s\n", docsURL(addr))
	fmt.Fprintf(&b, "Another admin key: %s\n", keyCreateHint(slug))
	b.WriteString("Walk-throughs: examples/purchase.sh and the others in examples/ (see the README)\n")
	fmt.Fprintf(&b, "%s\n\n", rule)
	_, err := io.WriteString(out, b.String())
	return err
}

// keyCreateHint is a command that creates another admin key of the tenant as typed where
// bootstrap runs: `make key` under make (GNU make sets MAKELEVEL for its recipes; make run's
// shell does not keep the embedded database's DATABASE_URL), tessera key create otherwise.
func keyCreateHint(slug string) string {
	if os.Getenv("MAKELEVEL") != "" {
		return fmt.Sprintf("make key TENANT=%s NAME=me", slug)
	}
	return fmt.Sprintf("tessera key create --tenant %s --name me   (with the same DATABASE_URL)", slug)
}
