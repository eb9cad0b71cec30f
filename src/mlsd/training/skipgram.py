"""Skip-gram embeddings of integer tokens (items in sessions, nodes on random walks) with gensim's Word2Vec.

One worker thread and a hash of the token text that does not change between processes (gensim seeds
each initial vector with ``hash(token)``, which Python randomizes per process): the same sequences
and seed give the same vectors in every run. Rows are unit length; a token never seen is a zero row.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from mlsd.core.progress import counter


def _stable_hash(text: str) -> int:
    return zlib.crc32(text.encode())


def skipgram_vectors(sequences: Sequence[Sequence[int]], tokens: int, *, dim: int, window: int, epochs: int,
                     negative: int = 5, seed: int = 0) -> np.ndarray:
    """A (tokens, dim) float32 matrix: row t is token t's unit vector (zeros if t never occurs)."""
    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    bar = counter(desc="skip-gram epochs", total=epochs, unit="epoch")

    class _Tick(CallbackAny2Vec):  # type: ignore[misc]  # gensim is untyped
        def on_epoch_end(self, model: Word2Vec) -> None:
            bar.update(1)

    try:
        model = Word2Vec([[str(t) for t in seq] for seq in sequences], vector_size=dim, window=window, min_count=1,
                         sg=1, negative=negative, epochs=epochs, seed=seed, workers=1, hashfxn=_stable_hash,
                         callbacks=[_Tick()])
    finally:
        bar.close()
    vectors = np.zeros((tokens, dim), np.float32)
    known = [t for t in range(tokens) if str(t) in model.wv.key_to_index]
    if known:
        vectors[known] = model.wv[[str(t) for t in known]]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-9), np.float32)
