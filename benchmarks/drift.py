"""Drift detection speed: mlsd vs Evidently on the same columns, in the same run, with the same verdicts.

1M reference rows and 1M current rows x 50 columns (25 numeric, 25 categorical); half of each kind
is shifted in the current data. Both sides use PSI (threshold 0.2) for numbers and Jensen–Shannon
distance (threshold 0.1) for categories, judged on effect size alone (Evidently's rule for these
methods: drift when the score reaches the threshold).

mlsd time = building the reference profile from the reference rows + detecting drift of the current
rows against it (what a first run costs; later windows only pay the second part, reported too).
Evidently time = one Report of per-column ValueDrift metrics over the two DataFrames.

Needs Evidently, which only the benchmark extra installs: ``make bench-drift`` (its own venv).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import pandas as pd

from _common import emit
from mlsd.monitoring import DatasetProfile, DriftThresholds, detect_drift

PSI_THRESHOLD, JS_THRESHOLD = 0.2, 0.1


def make_data(rows: int, columns: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str],
                                                                 set[str]]:
    """Reference and current frames; the shifted half of each kind is returned as a set of names."""
    rng = np.random.default_rng(seed)
    half = columns // 2
    numeric, categorical = [f"num_{i}" for i in range(half)], [f"cat_{i}" for i in range(columns - half)]
    reference: dict[str, Any] = {}
    current: dict[str, Any] = {}
    shifted: set[str] = set()
    for i, name in enumerate(numeric):
        kind = i % 3
        draw = {0: lambda s, n: rng.normal(0.0 + s, 1.0, n), 1: lambda s, n: rng.exponential(1.0 + s, n),
                2: lambda s, n: rng.lognormal(0.0 + s, 0.7, n)}[kind]
        shift = (0.6 if kind == 0 else 1.0) if i % 2 == 0 else 0.0
        reference[name], current[name] = draw(0.0, rows), draw(shift, rows)
        if shift:
            shifted.add(name)
    for i, name in enumerate(categorical):
        k = 8 + 4 * (i % 10)
        base = rng.dirichlet(np.ones(k) * 2)
        moved = base if i % 2 else rng.dirichlet(np.ones(k) * 2)  # a new mix of the same categories
        labels = np.array([f"v{j}" for j in range(k)], dtype=object)
        reference[name] = pd.Categorical(labels[rng.choice(k, rows, p=base)])
        current[name] = pd.Categorical(labels[rng.choice(k, rows, p=moved)])
        if i % 2 == 0:
            shifted.add(name)
    return pd.DataFrame(reference), pd.DataFrame(current), numeric, categorical, shifted


def run_mlsd(reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str],
             categorical: list[str], threads: int) -> tuple[dict[str, bool], dict[str, float], float, float]:
    started = time.perf_counter()
    profile = DatasetProfile.build({c: reference[c].to_numpy() for c in numeric},
                                   {c: reference[c].array for c in categorical})
    profiled = time.perf_counter()
    columns = {c: current[c].to_numpy() for c in numeric} | {c: current[c].array for c in categorical}
    by_psi = DriftThresholds(psi=PSI_THRESHOLD, js=None, p_value=None)
    by_js = DriftThresholds(psi=None, js=JS_THRESHOLD, p_value=None)
    numeric_profile = DatasetProfile({c: profile.columns[c] for c in numeric})
    categorical_profile = DatasetProfile({c: profile.columns[c] for c in categorical})
    drift = {**detect_drift(numeric_profile, columns, by_psi, threads=threads),
             **detect_drift(categorical_profile, columns, by_js, threads=threads)}
    done = time.perf_counter()
    verdicts = {c: d.drift for c, d in drift.items()}
    scores = {c: d.psi if c in numeric else d.js for c, d in drift.items()}
    return verdicts, scores, done - started, done - profiled


def run_evidently(reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str],
                  categorical: list[str]) -> tuple[dict[str, bool], dict[str, float], float]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    started = time.perf_counter()
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    ref = Dataset.from_pandas(reference, data_definition=definition)
    cur = Dataset.from_pandas(current, data_definition=definition)
    metrics = [ValueDrift(column=c, method="psi", threshold=PSI_THRESHOLD) for c in numeric]
    metrics += [ValueDrift(column=c, method="jensenshannon", threshold=JS_THRESHOLD) for c in categorical]
    snapshot = Report(metrics).run(cur, ref)
    seconds = time.perf_counter() - started
    scores: dict[str, float] = {}
    for result in snapshot.dict()["metrics"]:
        column = result["config"]["column"]
        scores[column] = float(result["value"])
    verdicts = {c: scores[c] >= (PSI_THRESHOLD if c in numeric else JS_THRESHOLD) for c in scores}
    return verdicts, scores, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    reference, current, numeric, categorical, shifted = make_data(args.rows, args.columns)
    mlsd_verdicts, mlsd_scores, mlsd_s, detect_s = run_mlsd(reference, current, numeric, categorical, args.threads)
    ev_verdicts, ev_scores, evidently_s = run_evidently(reference, current, numeric, categorical)
    agree = [c for c in numeric + categorical if mlsd_verdicts[c] == ev_verdicts.get(c)]
    truth = [c for c in numeric + categorical if mlsd_verdicts[c] == (c in shifted)]
    results = {
        "rows": args.rows, "columns": len(numeric) + len(categorical), "shifted_columns": len(shifted),
        "mlsd_s": round(mlsd_s, 3), "mlsd_detect_only_s": round(detect_s, 3), "evidently_s": round(evidently_s, 3),
        "speedup": round(evidently_s / mlsd_s, 1), "speedup_detect_only": round(evidently_s / detect_s, 1),
        "columns_agree": len(agree), "mlsd_matches_truth": len(truth),
        "disagreements": {c: {"mlsd": mlsd_scores[c], "evidently": ev_scores.get(c)}
                          for c in numeric + categorical if c not in agree},
        "threads": args.threads,
    }
    emit("drift", results)


if __name__ == "__main__":
    main()
