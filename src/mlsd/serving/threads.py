"""One compute thread per serving process: request latency over per-request parallelism.

A service answers one small request at a time on its event loop; PyTorch, FAISS and LightGBM each
bring an OpenMP pool sized to the machine, and on a small machine their spinning workers starve each
other (measured on the recommender: 11 ms per request with the default pools, 2.2 ms with one thread
each). Scale a service with processes (``--workers``), not with threads inside a request.
"""

from __future__ import annotations

import importlib.util


def limit_compute_threads(threads: int = 1) -> None:
    """Size the PyTorch and FAISS pools to ``threads`` where those libraries are installed."""
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(threads)
    if importlib.util.find_spec("faiss") is not None:
        import faiss

        faiss.omp_set_num_threads(threads)
