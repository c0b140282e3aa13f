package main

import (
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/pg"
)

func newTenantCommand() *cobra.Command {
	tenant := &cobra.Command{Use: "tenant", Short: "Administer tenants"}
	var slug, name string
	create := &cobra.Command{
		Use:   "create --slug SLUG [--name NAME]",
		Short: "Create a tenant and print its id",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				name = slug
			}
			return withDB(cmd.Context(), func(c *cli) error {
				box, err := c.cfg.box()
				if err != nil {
					return err
				}
				return pg.InTx(cmd.Context(), c.db, func(tx pgx.Tx) error {
					t, err := core.TenantCreate(cmd.Context(), tx, c.step(box), core.TenantCreateParams{Slug: slug, Name: name})
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
	_ = create.MarkFlagRequired("slug") // fails only for an undefined flag
	tenant.AddCommand(create)
	return tenant
}
