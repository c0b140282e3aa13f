package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/sql"
)

func newKeyCommand() *cobra.Command {
	key := &cobra.Command{Use: "key", Short: "Administer a tenant's admin API keys"}
	var tenantSlug string
	key.PersistentFlags().StringVar(&tenantSlug, "tenant", "", "the tenant's slug (required)")
	_ = key.MarkPersistentFlagRequired("tenant") // fails only for an undefined flag

	var name string
	create := &cobra.Command{
		Use:   "create --tenant SLUG --name NAME",
		Short: "Create an admin API key and print it (it is shown once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withTenant(cmd.Context(), tenantSlug, func(c *cli, tx pgx.Tx, tenant sql.Tenant) error {
				k, secret, err := core.APIKeyCreate(cmd.Context(), tx, c.step(nil), core.APIKeyCreateParams{TenantID: tenant.ID, Name: name})
				if err != nil {
					return err
				}
				c.log.Info("api key created; it is shown once", "tenant", tenant.Slug, "id", k.ID, "prefix", k.Prefix)
				_, err = fmt.Fprintln(cmd.OutOrStdout(), secret)
				return err
			})
		},
	}
	create.Flags().StringVar(&name, "name", "cli", "what the key is for")

	list := &cobra.Command{
		Use:   "list --tenant SLUG",
		Short: "List a tenant's admin API keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withTenant(cmd.Context(), tenantSlug, func(c *cli, tx pgx.Tx, tenant sql.Tenant) error {
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tPREFIX\tNAME\tCREATED\tREVOKED")
				var after *uuid.UUID
				for {
					keys, err := sql.New().APIKeyList(cmd.Context(), tx, sql.APIKeyListParams{TenantID: tenant.ID, After: after, RowLimit: 500})
					if err != nil {
						return fmt.Errorf("list api keys: %w", err)
					}
					for _, k := range keys {
						revoked := "-"
						if k.RevokedAt != nil {
							revoked = k.RevokedAt.Format(time.RFC3339)
						}
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Prefix, k.Name, k.CreatedAt.Format(time.RFC3339), revoked)
					}
					if len(keys) < 500 {
						return w.Flush()
					}
					after = &keys[len(keys)-1].ID
				}
			})
		},
	}

	revoke := &cobra.Command{
		Use:   "revoke --tenant SLUG KEY_ID",
		Short: "Revoke an admin API key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := uuid.Parse(args[0])
			if err != nil {
				return fmt.Errorf("KEY_ID must be a key's id (see tessera key list): %w", err)
			}
			return withTenant(cmd.Context(), tenantSlug, func(c *cli, tx pgx.Tx, tenant sql.Tenant) error {
				k, err := core.APIKeyRevoke(cmd.Context(), tx, c.step(nil), core.APIKeyRevokeParams{TenantID: tenant.ID, ID: id})
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "revoked %s (%s)\n", k.ID, k.Prefix)
				return err
			})
		},
	}
	key.AddCommand(create, list, revoke)
	return key
}

// withTenant runs fn in one transaction with the tenant named by slug.
func withTenant(ctx context.Context, slug string, fn func(c *cli, tx pgx.Tx, tenant sql.Tenant) error) error {
	return withDB(ctx, func(c *cli) error {
		return pg.InTx(ctx, c.db, func(tx pgx.Tx) error {
			tenant, err := sql.New().TenantGetBySlug(ctx, tx, slug)
			if err != nil {
				return fmt.Errorf("tenant %q: %w", slug, err)
			}
			return fn(c, tx, tenant)
		})
	})
}
