package main

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/sql"
)

func newBootstrapCommand() *cobra.Command {
	var slug string
	cmd := &cobra.Command{
		Use:   "bootstrap [--slug demo]",
		Short: "Create a demo tenant and admin key when the database has no tenant (make run does this)",
		Long:  "bootstrap creates a tenant and an admin API key, and prints the key and the docs URL, when the\ndatabase has no tenant yet. With a tenant already there it changes nothing.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return withDB(ctx, func(c *cli) error {
				out := cmd.OutOrStdout()
				box, err := c.cfg.box()
				if err != nil {
					return err
				}
				return pg.InTx(ctx, c.pool, func(tx pgx.Tx) error {
					existing, err := sql.New().TenantGetFirst(ctx, tx)
					if err = core.DBError(err); err == nil {
						fmt.Fprintf(out, "Tenant %q exists; its first key was shown when it was created.\n"+
							"Create another with: tessera key create --tenant %s --name me\n"+
							"API docs: %s\n", existing.Slug, existing.Slug, docsURL(c.cfg.Addr))
						return nil
					}
					if !errors.Is(err, core.ErrNotFound) {
						return fmt.Errorf("look for a tenant: %w", err)
					}
					tenant, err := core.TenantCreate(ctx, tx, c.clock.Now(), cliActor(), box, slug, "Demo")
					if err != nil {
						return err
					}
					_, secret, err := core.APIKeyCreate(ctx, tx, c.clock.Now(), cliActor(), tenant.ID, "demo admin")
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(out, "Created tenant %q.\nAdmin API key (shown once): %s\nAPI docs: %s\n",
						tenant.Slug, secret, docsURL(c.cfg.Addr))
					return err
				})
			})
		},
	}
	cmd.Flags().StringVar(&slug, "slug", "demo", "the demo tenant's slug")
	return cmd
}
