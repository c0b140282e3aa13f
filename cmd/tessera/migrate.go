package main

import (
	"github.com/spf13/cobra"

	"github.com/tessera/tessera/internal/migrate"
)

func newMigrateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply River's and Tessera's pending migrations",
		Long:  "migrate applies River's migrations (rivermigrate), then Tessera's (goose). Several processes\nmay run it at once: they take turns on an advisory lock.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withDB(cmd.Context(), func(c *cli) error {
				return migrate.Up(cmd.Context(), c.pool, c.log)
			})
		},
	}
}
