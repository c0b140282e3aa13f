package core_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/testdb"
)

// TestDBErrorText translates the errors of text Postgres cannot store, the backstop behind
// the API's screening of requests: each is ErrInvalid (a 422), never an unexplained 500.
func TestDBErrorText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, statement string
		args            []any
	}{
		{"NUL", "SELECT $1::text", []any{"a\x00b"}},                 // 22021 character_not_in_repertoire
		{"InvalidUTF8", "SELECT $1::text", []any{"a\xffb"}},         // 22021
		{"Untranslatable", "SELECT convert_to('€', 'LATIN1')", nil}, // 22P05 untranslatable_character
	} {
		t.Run(tc.name, func(t *testing.T) {
			tx := testdb.Tx(t)
			_, err := tx.Exec(context.Background(), tc.statement, tc.args...)
			require.Error(t, err)
			translated := core.DBError(err)
			require.ErrorIs(t, translated, core.ErrInvalid)
			require.Equal(t, "invalid: text must be valid UTF-8 without NUL characters", translated.Error())
		})
	}

	t.Run("TooLong", func(t *testing.T) { // 22001 string_data_right_truncation
		tx := testdb.Tx(t)
		_, err := tx.Exec(context.Background(), "CREATE TEMP TABLE short (v varchar(2))")
		require.NoError(t, err)
		_, err = tx.Exec(context.Background(), "INSERT INTO short VALUES ($1)", "abc")
		require.ErrorIs(t, core.DBError(err), core.ErrInvalid)
		require.Contains(t, core.DBError(err).Error(), "too long")
	})
}
