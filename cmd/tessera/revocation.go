package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/fakestore"
	"github.com/tessera/tessera/internal/upstream"
	"github.com/tessera/tessera/jobs"
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
		problems = append(problems, fmt.Errorf("TESSERA_REVOCATION_WEIGHT_*: %w", err))
	}
	return problems
}

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
