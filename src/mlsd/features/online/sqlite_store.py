"""Embedded online store: SQLite in WAL mode, one ``WITHOUT ROWID`` table per feature view."""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from mlsd.features.online.codec import MISSING_TS

_SAFE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _table(view: str) -> str:
    if not _SAFE.match(view):
        raise ValueError(f"view name {view!r} is not an identifier")
    return f"fv_{view}"


class SqliteOnlineStore:
    """Online store in a local SQLite file; reads take one prepared ``IN (...)`` query per batch.

    Connections are per thread (SQLite objects may not cross threads); WAL lets readers run during writes.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._tables: set[str] = set()
        self._queries: dict[tuple[str, int], str] = {}
        con = self._con()
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID")

    def _con(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("PRAGMA busy_timeout=10000")
            self._local.con = con
        return con

    def _ensure(self, view: str) -> str:
        table = _table(view)
        if table not in self._tables:
            self._con().execute(
                f"CREATE TABLE IF NOT EXISTS {table} (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")
            self._tables.add(table)
        return table

    def write_batch(self, view: str, keys: Sequence[bytes], values: Sequence[bytes]) -> None:
        table = self._ensure(view)
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            con.executemany(f"INSERT OR REPLACE INTO {table} (k, v) VALUES (?, ?)", zip(keys, values, strict=True))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def read_batch(self, view: str, keys: Sequence[bytes]) -> list[bytes | None]:
        table = self._ensure(view)
        con = self._con()
        if len(keys) == 1:
            row = con.execute(f"SELECT v FROM {table} WHERE k = ?", (keys[0],)).fetchone()
            return [None if row is None else row[0]]
        query = self._queries.get((table, len(keys)))
        if query is None:
            query = f"SELECT k, v FROM {table} WHERE k IN ({','.join('?' * len(keys))})"
            self._queries[(table, len(keys))] = query
        found = dict(con.execute(query, keys).fetchall())
        return [found.get(k) for k in keys]

    def delete_view(self, view: str) -> None:
        table = _table(view)
        self._con().execute(f"DROP TABLE IF EXISTS {table}")
        self._tables.discard(table)

    def get_meta(self, name: str) -> str | None:
        row = self._con().execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        self._con().execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    def view_stats(self) -> dict[str, tuple[int, int | None]]:
        """Rows and the newest stored event time (µs, the first 8 bytes of each value) per view table."""
        con = self._con()
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'fv_%'")]
        stats = {}
        for table in tables:
            rows, newest = 0, None
            for (head,) in con.execute(f"SELECT substr(v, 1, 8) FROM {table}"):
                rows += 1
                if len(head) == 8:
                    stamp = int.from_bytes(head, "little", signed=True)
                    if stamp != MISSING_TS and (newest is None or stamp > newest):
                        newest = stamp
            stats[table[3:]] = (rows, newest)
        return stats

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
