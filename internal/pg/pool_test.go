package pg_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/testdb"
)

// A pool configured by PoolConfig (testdb's) sends and reads google/uuid's UUID as binary,
// not through its driver.Valuer's text, and round-trips ids, null ids and arrays of ids.
func TestPoolUUIDs(t *testing.T) {
	t.Parallel()
	tx := testdb.Tx(t)
	plan := tx.Conn().TypeMap().PlanEncode(pgtype.UUIDOID, pgtype.BinaryFormatCode, uuid.UUID{})
	require.NotNil(t, plan)
	require.NotContains(t, fmt.Sprintf("%T", plan), "DriverValuer")
	for _, target := range []any{&uuid.UUID{}, &uuid.NullUUID{}} {
		scan := tx.Conn().TypeMap().PlanScan(pgtype.UUIDOID, pgtype.BinaryFormatCode, target)
		require.NotContains(t, fmt.Sprintf("%T", scan), "SQLScanner", "%T is read through its sql.Scanner", target)
	}

	id := uuid.Must(uuid.NewV7())
	var (
		got     uuid.UUID
		null    uuid.NullUUID
		present uuid.NullUUID
		ids     []uuid.UUID
		text    string
		absent  *uuid.UUID
		pointer *uuid.UUID
	)
	err := tx.QueryRow(context.Background(), "SELECT $1::uuid, $2::uuid, $3::uuid, ARRAY[$1::uuid, $1::uuid], $1::uuid::text, NULL::uuid, $1::uuid",
		id, uuid.NullUUID{}, uuid.NullUUID{UUID: id, Valid: true}).Scan(&got, &null, &present, &ids, &text, &absent, &pointer)
	require.NoError(t, err)
	require.Equal(t, id, got)
	require.Equal(t, uuid.NullUUID{}, null)
	require.Equal(t, uuid.NullUUID{UUID: id, Valid: true}, present)
	require.Equal(t, []uuid.UUID{id, id}, ids)
	require.Equal(t, id.String(), text)
	require.Nil(t, absent)
	require.Equal(t, &id, pointer)
}
