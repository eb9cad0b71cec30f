"""Helpers shared by the benchmark scripts: JSON results, child processes for peak memory, percentiles."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, in GB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def run_child(script: str, *args: str) -> dict[str, Any]:
    """Run ``script`` with ``args`` in a fresh interpreter (own peak memory); it prints one JSON line last."""
    out = subprocess.run([sys.executable, script, *args], check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def percentiles_ms(seconds: list[float], prefix: str) -> dict[str, float]:
    values = np.asarray(seconds) * 1000
    return {f"{prefix}_p50_ms": round(float(np.percentile(values, 50)), 4),
            f"{prefix}_p99_ms": round(float(np.percentile(values, 99)), 4)}


def emit(name: str, result: dict[str, Any]) -> None:
    """Print the result as one JSON object and keep it under benchmarks/results/."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
