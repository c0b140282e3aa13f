package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/tessera/tessera/internal/migrate"
)

func newMigrateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply River's and Tessera's pending migrations",
		Long: "migrate applies River's migrations (rivermigrate), then Tessera's (goose). Several processes\n" +
			"may run it at once: they take turns on an advisory lock. It needs a direct connection to\n" +
			"Postgres, not a transaction pooler (TESSERA_DB_POOLER=transaction is refused).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withDB(cmd.Context(), func(c *cli) error {
				if c.cfg.transactionPooled() {
					return errMigratePooled
				}
				return migrate.Up(cmd.Context(), c.pool, c.log)
			})
		},
	}
}

// errMigratePooled is migrate's answer behind a transaction pooler.
var errMigratePooled = errors.New("tessera migrate needs a direct connection to Postgres: its session advisory locks (its own and goose's) " +
	"do not survive a transaction pooler. Run it with DATABASE_URL pointing at Postgres itself and TESSERA_DB_POOLER unset")
