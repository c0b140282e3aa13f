// Package migrations holds Tessera's goose migrations, embedded in the binary. They are
// also the schema sqlc reads to generate the sql package.
package migrations

import "embed"

// FS holds the zero-padded goose migrations, one change each.
//
//go:embed *.sql
var FS embed.FS
