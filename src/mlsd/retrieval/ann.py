"""Vector indexes for candidate retrieval: one small interface, FAISS behind it.

:class:`ExactIndex` (brute-force inner product) is the reference; :class:`HnswIndex` is the
approximate graph index (tuned by ``ef_search`` for recall vs latency) and :class:`IvfIndex` the
approximate inverted-file one (k-means cells, tuned by ``nprobe``). All answer
``search(queries, k) -> (scores, ids)`` with ids ``-1`` where fewer than ``k`` items exist, and can
be saved to and loaded from one file. The contract every index must pass is in
:func:`check_vector_index` (run by the test suite on each implementation).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np


class VectorIndex(Protocol):
    """Top-k maximum inner product search over a fixed set of item vectors."""

    @property
    def size(self) -> int: ...

    def add(self, vectors: np.ndarray) -> None: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def save(self, path: Path) -> None: ...


def _rows(vectors: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(vectors, dtype=np.float32)
    return array.reshape(1, -1) if array.ndim == 1 else array


class _FaissIndex:
    def __init__(self, index: Any) -> None:
        self.index = index

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def add(self, vectors: np.ndarray) -> None:
        self.index.add(_rows(vectors))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        scores, ids = self.index.search(_rows(queries), k)
        return scores, ids.astype(np.int64)

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(path))


class ExactIndex(_FaissIndex):
    """Exact inner-product search (``IndexFlatIP``): the recall reference."""

    def __init__(self, dim: int) -> None:
        import faiss

        super().__init__(faiss.IndexFlatIP(dim))


class HnswIndex(_FaissIndex):
    """Approximate inner-product search on an HNSW graph (``IndexHNSWFlat``, ``M`` links per node)."""

    def __init__(self, dim: int, m: int = 32, ef_construction: int = 80, ef_search: int = 128) -> None:
        import faiss

        index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.hnsw.efSearch = ef_search
        super().__init__(index)

    @property
    def ef_search(self) -> int:
        return int(self.index.hnsw.efSearch)

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self.index.hnsw.efSearch = value


class IvfIndex(_FaissIndex):
    """Approximate inner-product search over k-means cells (``IndexIVFFlat``), probing ``nprobe`` of them.

    The coarse quantizer is trained on the first batch added, so the index is built with one ``add``
    of the catalogue (as FAISS users do with ``train`` then ``add``). A small first batch gets fewer
    cells (FAISS wants about 39 training points per cell); later batches are assigned to the cells.
    """

    def __init__(self, dim: int, nlist: int = 4096, nprobe: int = 32) -> None:
        import faiss

        self.dim, self.nlist, self._nprobe = dim, nlist, nprobe
        super().__init__(faiss.IndexFlatIP(dim))  # an empty placeholder until the first add
        self._trained = False

    def add(self, vectors: np.ndarray) -> None:
        import faiss

        rows = _rows(vectors)
        if not self._trained:
            cells = max(1, min(self.nlist, len(rows) // 39))
            quantizer = faiss.IndexFlatIP(self.dim)
            index = faiss.IndexIVFFlat(quantizer, self.dim, cells, faiss.METRIC_INNER_PRODUCT)
            index.train(rows)
            index.nprobe = min(self._nprobe, cells)
            self.index, self._trained = index, True  # FAISS keeps ``quantizer`` referenced
        self.index.add(rows)

    @property
    def nprobe(self) -> int:
        return int(self.index.nprobe) if self._trained else self._nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self._nprobe = value
        if self._trained:
            self.index.nprobe = value


def load_index(path: Path) -> VectorIndex:
    """An index written by ``save`` (exact, HNSW or IVF, as it was saved)."""
    import faiss

    index: Any = faiss.read_index(str(path))
    if hasattr(index, "nprobe"):
        ivf = _attach(IvfIndex, index)
        ivf.dim, ivf.nlist, ivf._nprobe, ivf._trained = int(index.d), int(index.nlist), int(index.nprobe), True
        return ivf
    return _attach(HnswIndex if hasattr(index, "hnsw") else ExactIndex, index)


_Wrapper = TypeVar("_Wrapper", bound=_FaissIndex)


def _attach(cls: type[_Wrapper], index: Any) -> _Wrapper:
    wrapper = cls.__new__(cls)
    _FaissIndex.__init__(wrapper, index)
    return wrapper


def recall_at_k(approximate: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of the exact top-k ids that the approximate top-k found."""
    k = exact.shape[1]
    found = sum(len(np.intersect1d(a[a >= 0], e[e >= 0])) for a, e in zip(approximate, exact, strict=True))
    return float(found / (len(exact) * k))


def check_vector_index(make: Callable[[int], VectorIndex], dim: int = 16, seed: int = 0) -> None:
    """The contract: exact agreement on small data, -1 padding, save/load round trip, input checks."""
    import tempfile

    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(300, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = make(dim)
    assert index.size == 0
    index.add(vectors)
    assert index.size == 300
    queries = rng.normal(size=(20, dim)).astype(np.float32)
    scores, ids = index.search(queries, 10)
    assert ids.shape == (20, 10)
    assert scores.shape == (20, 10)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    assert recall_at_k(ids, truth) >= 0.95, recall_at_k(ids, truth)
    assert np.all(np.diff(scores, axis=1) <= 1e-5), "scores must come best first"
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ vectors.T, ids, 1), rtol=1e-4, atol=1e-4)
    _one_scores, one_ids = index.search(queries[0], 5)  # a single vector is one query
    assert one_ids.shape == (1, 5)
    assert np.array_equal(one_ids[0], ids[0, :5])
    small = make(dim)
    small.add(vectors[:3])
    _, padded = small.search(queries[:2], 5)
    assert np.all(padded[:, 3:] == -1)
    assert np.all(padded[:, :3] >= 0)
    with tempfile.TemporaryDirectory() as tmp:
        index.save(Path(tmp) / "index.faiss")
        again = load_index(Path(tmp) / "index.faiss")
        assert type(again) is type(index)
        assert np.array_equal(again.search(queries, 10)[1], ids)
    try:
        index.search(queries, 0)
    except ValueError:
        pass
    else:
        raise AssertionError("k = 0 must be rejected")
