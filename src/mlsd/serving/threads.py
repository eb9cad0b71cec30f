"""One compute thread per serving process: request latency over per-request parallelism.

A service answers one small request at a time on its event loop. NumPy's BLAS, PyTorch, FAISS and
LightGBM each bring a thread pool sized to the machine; on a small machine their idle-spinning
workers compete with the event loop and with each other. Measured on the recommender at 200 req/s
on 2 cores: p99 about 48 ms with OpenBLAS at its default (co-visitation's vector-matrix product
stalled up to 30 ms), 8-10 ms in the runs right after capping it (the tail still varies with machine
load: benchmarks/RESULTS.md). Scale a service with processes (``--workers``), not with threads inside
a request.
"""

from __future__ import annotations


def limit_compute_threads(threads: int = 1) -> None:
    """Cap the BLAS and OpenMP pools of this process (and PyTorch's own) at ``threads``.

    LightGBM needs nothing of its own: with ``num_threads`` 0 it uses the OpenMP maximum set here.
    """
    import faiss  # imported first so that its OpenMP runtime is loaded when threadpoolctl looks
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    threadpool_limits(limits=threads)  # every BLAS and OpenMP runtime loaded so far (numpy, LightGBM)
