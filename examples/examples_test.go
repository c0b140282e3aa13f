// Package examples holds the README's walk-throughs as scripts and the generated clients'
// examples; its tests run them all against a started Tessera (make examples, make test) and
// check that the README shows the scripts as they are.
package examples

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/testdb"
)

// TestExamples starts Tessera as make run does — migrate, bootstrap writing the admin key to a
// file, the fake BTCPay, serve with the workers — on its own database and free loopback ports,
// then runs every walk-through script and both generated clients against it (with the
// database's settings, which the CLI reads), logging their output, and stops everything.
func TestExamples(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tessera := filepath.Join(dir, "tessera")
	run(t, "..", "go", "build", "-o", tessera, "./cmd/tessera")

	addr, btcpay := freeAddr(t), freeAddr(t)
	database, secret := "DATABASE_URL="+testdb.Empty(t), "TESSERA_SECRET_KEY="+factory.SecretKey
	env := []string{
		database,
		secret,
		"TESSERA_ADDR=" + addr,
		"TESSERA_ALLOW_PRIVATE_NETWORKS=true",
		"TESSERA_BTCPAY_URL=http://" + btcpay,
		"TESSERA_BTCPAY_STORE_ID=fake-store",
		"TESSERA_BTCPAY_API_KEY=fake-api-key",
		"TESSERA_BTCPAY_WEBHOOK_SECRET=fake-webhook-secret",
		"TESSERA_REVOCATION_INTERVAL=1s", // the revocation walk-through waits for a few checks
		"TESSERA_LOG_LEVEL=warn",
	}
	start(t, env, tessera, "fake-btcpay", "--addr", btcpay, "--webhook-url", "http://"+addr+"/v1/providers/btcpay/webhook")
	run(t, "..", "env", append(env, tessera, "migrate")...)
	keyFile := filepath.Join(dir, "admin-key")
	t.Log(run(t, "..", "env", append(env, tessera, "bootstrap", "--key-file", keyFile)...))
	start(t, env, tessera, "serve")
	ready(t, "http://"+addr+"/readyz")

	key, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	clients := []string{
		"TESSERA_URL=http://" + addr,
		"TESSERA_ADMIN_KEY=" + strings.TrimSpace(string(key)),
		"FAKE_BTCPAY_URL=http://" + btcpay,
		"FAKE_STORE_ADDR=" + freeAddr(t),
		"WEBHOOK_RECEIVER_ADDR=" + freeAddr(t),
		"TESSERA_BIN=" + tessera,
		database, secret, // the sandbox walk-through creates its tenant with the CLI
	}
	scripts, err := filepath.Glob("*.sh")
	require.NoError(t, err)
	for _, script := range scripts {
		if script == "lib.sh" {
			continue
		}
		t.Logf("examples/%s:\n%s", script, run(t, ".", "env", append(clients, "./"+script)...))
	}
	t.Logf("examples/go-client:\n%s", run(t, "go-client", "env", append(clients, "sh", "-c", "go generate && go run .")...))
	t.Logf("examples/ts-client:\n%s", run(t, "ts-client", "env", append(clients, "sh", "-c", "npm ci --no-audit --no-fund && npm start --silent")...))
}

// run runs name with args in dir and returns its output (stdout and stderr); it fails the
// test, with the output, when the command fails.
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
	return string(out)
}

// start starts tessera with args and env in the background; when the test ends it is stopped
// with SIGTERM (as make run's Ctrl-C does) and its output logged.
func start(t *testing.T, env []string, tessera string, args ...string) {
	t.Helper()
	var out factory.Output
	cmd := exec.Command(tessera, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("tessera %s:\n%s", strings.Join(args, " "), out.String())
		}
	})
}

// ready waits until url answers 200.
func ready(t *testing.T, url string) {
	t.Helper()
	require.Eventually(t, func() bool {
		res, err := http.Get(url)
		if err != nil {
			return false
		}
		require.NoError(t, res.Body.Close())
		return res.StatusCode == http.StatusOK
	}, time.Minute, 100*time.Millisecond, "%s never answered 200", url)
}

// freeAddr returns a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { require.NoError(t, ln.Close()) }()
	return ln.Addr().String()
}
