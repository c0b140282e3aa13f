package pgbench

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTPS reads the throughput from pgbench 15's summary, and fails on output without one.
func TestTPS(t *testing.T) {
	t.Parallel()
	output := `pgbench (15.18 (Debian 15.18-0+deb12u1))
starting vacuum...end.
transaction type: <builtin: TPC-B (sort of)>
scaling factor: 16
number of transactions actually processed: 4463
latency average = 31.348 ms
initial connection time = 1310.063 ms
tps = 510.407078 (without initial connection time)
`
	tps, out, err := TPS(output)
	require.NoError(t, err)
	require.InDelta(t, 510.407078, tps, 1e-9)
	require.Equal(t, output, out)

	_, _, err = TPS("pgbench: error: connection to server failed\n")
	require.ErrorContains(t, err, `pgbench printed no "tps = " line`)
}

// TestVersion orders Debian's server directories by major version.
func TestVersion(t *testing.T) {
	t.Parallel()
	require.Equal(t, 15, version("/usr/lib/postgresql/15/bin/pgbench"))
	require.Equal(t, 0, version("/usr/lib/postgresql/devel/bin/pgbench"))
}
