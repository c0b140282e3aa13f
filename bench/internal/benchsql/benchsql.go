// Package benchsql reads the text of a generated query, so a benchmark can EXPLAIN exactly
// what Tessera runs. Benchmarks run from the repository's root.
package benchsql

import (
	"fmt"
	"os"
	"regexp"
)

// QueryText returns the SQL of the generated constant (e.g. "revocationQueue") in file
// (e.g. "sql/revocation.sql.go"), without its "-- name:" line.
func QueryText(file, constant string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("run from the repository's root: %w", err)
	}
	m := regexp.MustCompile("(?s)const " + regexp.QuoteMeta(constant) + " = `.*?\n(.*?)`").FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("%s not found in %s", constant, file)
	}
	return string(m[1]), nil
}
