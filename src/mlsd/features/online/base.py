"""The online store interface: opaque packed values under (view, entity key), written and read in batches.

Stores never interpret values; :class:`~mlsd.features.online.codec.VectorCodec` packs a whole feature
view's values for one entity into one blob, so a read of 50 features is one key lookup, not 50.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

KEY_SEPARATOR = "\x1f"


def encode_keys(columns: Sequence[Iterable[object]]) -> list[bytes]:
    """Entity keys as bytes from join-key columns (one iterable per key; values as text, ``\\x1f``-joined)."""
    if len(columns) == 1:
        return [str(v).encode() for v in columns[0]]
    return [KEY_SEPARATOR.join(map(str, values)).encode() for values in zip(*columns, strict=True)]


@runtime_checkable
class OnlineStore(Protocol):
    """Latest feature values per entity; the interface every backend implements and the contract kit tests."""

    def write_batch(self, view: str, keys: Sequence[bytes], values: Sequence[bytes]) -> None:
        """Upsert one packed value per key (last write wins), atomically for the batch where possible."""
        ...

    def read_batch(self, view: str, keys: Sequence[bytes]) -> list[bytes | None]:
        """Packed values in key order; ``None`` for unknown keys."""
        ...

    def delete_view(self, view: str) -> None:
        """Drop every value of a view."""
        ...

    def get_meta(self, name: str) -> str | None:
        """Small bookkeeping values (materialization watermarks)."""
        ...

    def set_meta(self, name: str, value: str) -> None: ...

    def close(self) -> None: ...
