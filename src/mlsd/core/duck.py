"""DuckDB connections configured the way every mlsd query expects (UTC, bounded memory)."""

from __future__ import annotations

import duckdb


def connect(*, memory_limit: str | None = None, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection in UTC; ``memory_limit`` (e.g. ``"1GB"``) makes big joins spill."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def sql_str(value: object) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_paths(paths: list[str] | list[object]) -> str:
    """A DuckDB list literal of file paths, for ``read_parquet([...])``."""
    return "[" + ", ".join(sql_str(p) for p in paths) + "]"
