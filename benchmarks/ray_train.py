"""Data-parallel DCN-v2 on Ray Train: 1 vs 2 workers (and the embedded fit), same data, same seed.

    python benchmarks/ray_train.py --rows 2000000 --epochs 3 --seeds 3

The generated ad marketplace (train days 0-4, negatives downsampled to 25%, validation day 5, test
day 6), DCN-v2 for a fixed number of epochs (no early stop, so every run does the same work).
``rows_per_s_N`` is rows x epochs over the workers' training loop (the loop only: Ray Train's worker
start, the shard read and the checkpoint are in ``wall_s_N``); ``efficiency`` is rows_per_s_2 /
(2 x rows_per_s_1). Each Ray worker has one CPU and one intra-op thread; the embedded fit uses the
process's threads (2 on this machine). Test AUC from the same metric code for every run, for each
of ``--seeds`` model seeds: ``auc_N`` is the mean, ``auc_sd_N`` the sd over seeds (the yardstick for
the difference between engines: DCN-v2 here moves by about 0.01-0.02 AUC from seed to seed).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()

    from mlsd.evaluation.classification import evaluate
    from mlsd.scale.cluster import ensure_ray
    from mlsd.scale.train import RayTrainEngine
    from mlsd.systems.ads.training import marketplace_set
    from mlsd.training import EmbeddedEngine
    from mlsd.training.calibration import downsample_negatives
    from mlsd.training.models.base import make_model

    ensure_ray(num_cpus=args.cpus)
    data = marketplace_set(rows=args.rows, seed=11)
    encoder = data.encoder()
    encoder.fit({n: data.columns[n][data.split.train] for n in encoder.numeric})
    everything = encoder.transform(data.columns, data.labels)
    kept = data.split.train[downsample_negatives(data.labels[data.split.train], data.negative_rate, 0)]
    train, valid = everything.take(kept), everything.take(data.split.valid[:50_000])
    test = everything.take(data.split.test)
    result: dict[str, Any] = {"train_rows": len(kept), "epochs": args.epochs, "seeds": args.seeds}
    runs: dict[str, list[tuple[float, float, float]]] = {"embedded": [], "1": [], "2": []}
    for seed in range(args.seeds):
        for name, engine in (("embedded", EmbeddedEngine()), ("1", RayTrainEngine(1)), ("2", RayTrainEngine(2))):
            model = make_model("dcn_v2", encoder, seed=seed, epochs=args.epochs, patience=args.epochs + 1)
            started = time.perf_counter()
            report = engine.fit(model, train, valid)
            wall = time.perf_counter() - started
            assert report.iterations == args.epochs
            auc = evaluate(data.labels[data.split.test], model.predict(test))["auc"]
            runs[name].append((len(kept) * args.epochs / report.seconds, auc, wall))
    for name, values in runs.items():
        speed, auc, wall = (np.array(v) for v in zip(*values, strict=True))
        result |= {f"rows_per_s_{name}": round(float(speed.mean())), f"auc_{name}": round(float(auc.mean()), 5),
                   f"auc_sd_{name}": round(float(auc.std(ddof=1)), 5) if len(auc) > 1 else None,
                   f"aucs_{name}": [round(float(a), 4) for a in auc], f"wall_s_{name}": round(float(wall.mean()), 1)}
    result["efficiency"] = round(result["rows_per_s_2"] / (2 * result["rows_per_s_1"]), 3)
    result["auc_2_minus_1"] = round(result["auc_2"] - result["auc_1"], 5)
    emit("ray_train", result)


if __name__ == "__main__":
    main()
