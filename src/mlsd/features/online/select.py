"""Which online store a home uses: SQLite in the home by default, Redis where ``MLSD_ONLINE_STORE`` says.

``MLSD_ONLINE_STORE=redis://HOST:PORT/DB`` moves every system's online store to that Redis (as a
Feast user sets ``online_store: type: redis``); each home's keys live under their own namespace
(derived from the home's path), so several homes share one Redis without meeting. Unset (or
``sqlite``), the store is the SQLite file in the home: the embedded default, no server.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mlsd.core.errors import DefinitionError
from mlsd.features.online.base import OnlineStore
from mlsd.features.online.redis_store import RedisOnlineStore
from mlsd.features.online.sqlite_store import SqliteOnlineStore

ENV = "MLSD_ONLINE_STORE"


def open_online_store(path: str | os.PathLike[str]) -> OnlineStore:
    """The online store for the SQLite file ``path`` would hold: that file, or Redis (module docstring)."""
    setting = os.environ.get(ENV, "").strip()
    if setting in ("", "sqlite"):
        return SqliteOnlineStore(path)
    if setting.startswith(("redis://", "rediss://", "unix://")):
        digest = hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:12]
        return RedisOnlineStore(setting, namespace=f"mlsd:{digest}")
    raise DefinitionError(f"{ENV}={setting!r}: expected sqlite or a redis:// URL")
