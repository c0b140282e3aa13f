package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/user"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/spf13/cobra"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/secrets"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "tessera",
		Short:         "Tessera: licensing and subscriptions on Postgres",
		Long:          "Tessera is a licensing and subscription backend that lives in Postgres.\nConfiguration comes from environment variables (DATABASE_URL, TESSERA_ADDR, ...); see the README.",
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	root.AddCommand(
		newServeCommand(),
		newWorkerCommand(),
		newMigrateCommand(),
		newBootstrapCommand(),
		newTenantCommand(),
		newKeyCommand(),
		newJobsCommand(),
		newOpenAPICommand(),
		newImportCommand(),
		newFakeStoreCommand(),
		newFakeBTCPayCommand(),
	)
	return root
}

// cli is what a database command needs: configuration, a logger, the database and the clock.
type cli struct {
	cfg Config
	log *slog.Logger
	// pool is the connection pool, for migrations and River; db is the same pool with
	// Tessera's errors (core.DB), for everything else.
	pool  *pgxpool.Pool
	db    pg.DB
	clock clock.Clock
	// jobs is an insert-only River client: it enqueues, retries and cancels jobs in the
	// command's transaction.
	jobs *river.Client[pgx.Tx]
}

// withDB runs fn with a connected cli and closes the pool afterwards.
func withDB(ctx context.Context, fn func(c *cli) error) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	pool, err := cfg.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	jobs, err := river.NewClient(riverpgxv5.New(nil), &river.Config{})
	if err != nil {
		return err
	}
	return fn(&cli{cfg: cfg, log: cfg.logger(), pool: pool, db: core.DB(pool), clock: clock.System{}, jobs: jobs})
}

// cliActor is the audit-log actor of CLI commands: the operating-system user.
func cliActor() core.Actor {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return core.Actor{Type: core.ActorCLI, ID: name}
}

// step returns what a core step run by a CLI command needs: the time, the operating-system
// user as the actor, box (nil for a step that opens no secret), and the insert-only River
// client.
func (c *cli) step(box *secrets.Box) core.Step {
	return core.Step{Now: c.clock.Now(), Actor: cliActor(), Box: box, Jobs: c.jobs}
}

// docsURL is where the API's documentation is served for a listen address.
func docsURL(addr string) string {
	return serveURL(addr, "/docs")
}

// serveURL is the URL of path on a listen address, naming localhost for a wildcard host.
func serveURL(addr, path string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil { //lint:swallow an address without a port is printed as it is
		return fmt.Sprintf("http://%s%s", addr, path)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return fmt.Sprintf("http://%s%s", net.JoinHostPort(host, port), path)
}
