package main

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/pg"
)

func newTenantCommand() *cobra.Command {
	tenant := &cobra.Command{Use: "tenant", Short: "Administer tenants"}
	var slug, name, clockAt string
	var sandbox bool
	create := &cobra.Command{
		Use:   "create --slug SLUG [--name NAME] [--sandbox [--clock RFC3339]]",
		Short: "Create a tenant and print its id",
		Long: "create makes a live tenant, on real time; with --sandbox, a sandbox tenant whose own clock\n" +
			"stands at --clock (default: now) and moves only forward. The mode cannot be changed later.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				name = slug
			}
			if clockAt != "" && !sandbox {
				return fmt.Errorf("%w: --clock sets a sandbox tenant's clock; add --sandbox", core.ErrInvalid)
			}
			return withDB(cmd.Context(), func(c *cli) error {
				box, err := c.cfg.box()
				if err != nil {
					return err
				}
				st := c.step(box)
				p := core.TenantCreateParams{Slug: slug, Name: name}
				if sandbox {
					at := st.Now
					if clockAt != "" {
						if at, err = time.Parse(time.RFC3339Nano, clockAt); err != nil {
							return fmt.Errorf("%w: --clock %q is not an RFC 3339 time: %w", core.ErrInvalid, clockAt, err)
						}
					}
					p.SandboxClock = &at
				}
				return pg.InTx(cmd.Context(), c.db, func(tx pgx.Tx) error {
					t, err := core.TenantCreate(cmd.Context(), tx, st, p)
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", t.ID, t.Slug)
					return err
				})
			})
		},
	}
	create.Flags().StringVar(&slug, "slug", "", "unique slug: lower-case letters, digits and dashes (required)")
	create.Flags().StringVar(&name, "name", "", "display name (default: the slug)")
	create.Flags().BoolVar(&sandbox, "sandbox", false, "a sandbox tenant with its own clock (default: a live tenant)")
	create.Flags().StringVar(&clockAt, "clock", "", "the sandbox's clock, RFC 3339 (default: now; needs --sandbox)")
	_ = create.MarkFlagRequired("slug") // fails only for an undefined flag
	tenant.AddCommand(create)
	return tenant
}
