"""Migrations apply once each, in order, and a second run changes nothing."""

import secrets
from pathlib import Path

import asyncpg

from poi_cli import stack
from poi_shared import db


async def test_migrations_apply_once(infra: stack.Infrastructure, namespace: str, tmp_path: Path) -> None:
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE first_table (id int);")
    (tmp_path / "0002_second.sql").write_text("ALTER TABLE first_table ADD COLUMN name text;")
    name = f"{namespace}_migr_{secrets.token_hex(3)}"
    await db.ensure_database(infra.database_url, name)
    await db.ensure_database(infra.database_url, name)  # idempotent
    url = db.database_url(infra.database_url, name)

    assert await db.migrate(url, [("demo", tmp_path)]) == ["demo/0001_first.sql", "demo/0002_second.sql"]
    assert await db.migrate(url, [("demo", tmp_path)]) == []

    conn = await asyncpg.connect(url)
    try:
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'first_table' ORDER BY 1"
        )
    finally:
        await conn.close()
    assert [c["column_name"] for c in columns] == ["id", "name"]


async def test_failed_migration_rolls_back(infra: stack.Infrastructure, namespace: str, tmp_path: Path) -> None:
    (tmp_path / "0001_bad.sql").write_text("CREATE TABLE half (id int); SELECT no_such_function();")
    name = f"{namespace}_migr_{secrets.token_hex(3)}"
    await db.ensure_database(infra.database_url, name)
    url = db.database_url(infra.database_url, name)
    try:
        await db.migrate(url, [("bad", tmp_path)])
    except asyncpg.PostgresError:
        pass
    else:
        raise AssertionError("the broken migration should fail")
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT to_regclass('half')") is None
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 0
    finally:
        await conn.close()
