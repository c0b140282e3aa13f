package pg

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	pgxuuid "github.com/vgarvardt/pgx-google-uuid/v5"
)

// PoolConfig parses connString into the configuration of a pool whose connections have
// Tessera's types registered (RegisterTypes). Every pool Tessera opens (serve, worker, the
// commands, tests and benchmarks) is configured by it, so queries encode their parameters
// alike everywhere.
func PoolConfig(connString string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	cfg.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		RegisterTypes(conn.TypeMap())
		return nil
	}
	return cfg, nil
}

// NewPool opens a pool on connString configured by PoolConfig.
func NewPool(ctx context.Context, connString string) (*pgxpool.Pool, error) {
	cfg, err := PoolConfig(connString)
	if err != nil {
		return nil, err
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}

// RegisterTypes registers on m the codec of google/uuid's UUID (and NullUUID), the type of
// every id in sql/: it is sent and read as Postgres's 16 binary bytes. Without it pgx goes
// through the UUID's driver.Valuer, formatting each parameter as text that Postgres parses,
// and scans through sql.Scanner (binary → text → parse): a third of validation's CPU in
// Tessera's process.
func RegisterTypes(m *pgtype.Map) {
	pgxuuid.Register(m)
	m.RegisterType(&pgtype.Type{Name: "uuid", OID: pgtype.UUIDOID, Codec: uuidCodec{}})
}

// uuidCodec is pgx-google-uuid's codec, reading columns into google/uuid's UUID and
// NullUUID directly. pgx tries a target's sql.Scanner before the map's scan wrappers, so
// pgx-google-uuid's wrapper alone never reads them: this codec plans them first.
type uuidCodec struct{ pgxuuid.UUIDCodec }

// PlanScan reads into *uuid.UUID and *uuid.NullUUID as into pgx-google-uuid's types (their
// pgtype.UUIDScanner), and into anything else as pgx does.
func (c uuidCodec) PlanScan(m *pgtype.Map, oid uint32, format int16, target any) pgtype.ScanPlan {
	if wrap, next, ok := pgxuuid.TryWrapUUIDScanPlan(target); ok {
		if plan := c.UUIDCodec.PlanScan(m, oid, format, next); plan != nil {
			wrap.SetNext(plan)
			return wrap
		}
	}
	return c.UUIDCodec.PlanScan(m, oid, format, target)
}
