"""The contract every online store passes (run it on a new backend as scikit-learn runs estimator checks).

Each check takes a fresh, empty store and raises ``AssertionError`` on a violation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from mlsd.features.online.base import OnlineStore, encode_keys
from mlsd.features.online.codec import VectorCodec


def check_round_trip(store: OnlineStore) -> None:
    codec = VectorCodec(3)
    keys = encode_keys([[1, 2, 3]])
    values = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0], [-1e300, 0.0, 1e-300]])
    store.write_batch("v", keys, codec.encode_rows(np.array([10, 20, 30]), values))
    ts, got = codec.decode(store.read_batch("v", keys))
    assert ts.tolist() == [10, 20, 30]
    np.testing.assert_array_equal(got, values)


def check_missing_keys_read_as_none(store: OnlineStore) -> None:
    store.write_batch("v", [b"a"], [b"x" * 16])
    assert store.read_batch("v", [b"zz", b"a", b"yy"]) == [None, b"x" * 16, None]
    assert store.read_batch("never_written", [b"a"]) == [None]


def check_last_write_wins(store: OnlineStore) -> None:
    store.write_batch("v", [b"k"], [b"old"])
    store.write_batch("v", [b"k", b"j"], [b"new", b"other"])
    assert store.read_batch("v", [b"k", b"j"]) == [b"new", b"other"]


def check_views_are_separate(store: OnlineStore) -> None:
    store.write_batch("a", [b"k"], [b"in-a"])
    store.write_batch("b", [b"k"], [b"in-b"])
    store.delete_view("a")
    assert store.read_batch("a", [b"k"]) == [None]
    assert store.read_batch("b", [b"k"]) == [b"in-b"]


def check_multi_column_keys(store: OnlineStore) -> None:
    keys = encode_keys([[1, 1, 2], [7, 8, 7]])
    assert len(set(keys)) == 3
    store.write_batch("v", keys, [b"1-7", b"1-8", b"2-7"])
    assert store.read_batch("v", encode_keys([[2, 1], [7, 8]])) == [b"2-7", b"1-8"]


def check_large_batch_read(store: OnlineStore) -> None:
    keys = [str(i).encode() for i in range(5000)]
    store.write_batch("v", keys, [k * 2 for k in keys])
    assert store.read_batch("v", keys[::-1]) == [k * 2 for k in keys[::-1]]


def check_meta(store: OnlineStore) -> None:
    assert store.get_meta("watermark") is None
    store.set_meta("watermark", "42")
    store.set_meta("watermark", "43")
    assert store.get_meta("watermark") == "43"


def check_concurrent_readers_see_whole_batches(store: OnlineStore) -> None:
    """A reader never sees half of a batch write: both keys always carry the same generation."""
    stop = threading.Event()
    torn: list[tuple[bytes | None, bytes | None]] = []

    def read() -> None:
        while not stop.is_set():
            a, b = store.read_batch("v", [b"a", b"b"])
            if a != b:
                torn.append((a, b))

    store.write_batch("v", [b"a", b"b"], [b"0", b"0"])
    reader = threading.Thread(target=read)
    reader.start()
    for generation in range(1, 200):
        value = str(generation).encode()
        store.write_batch("v", [b"a", b"b"], [value, value])
    stop.set()
    reader.join()
    assert not torn, f"reader saw torn batches: {torn[:3]}"


CHECKS: tuple[Callable[[OnlineStore], None], ...] = (
    check_round_trip,
    check_missing_keys_read_as_none,
    check_last_write_wins,
    check_views_are_separate,
    check_multi_column_keys,
    check_large_batch_read,
    check_meta,
    check_concurrent_readers_see_whole_batches,
)
