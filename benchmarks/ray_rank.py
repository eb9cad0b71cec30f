"""Data-parallel two-tower and LambdaMART on Ray Train: embedded vs 1 vs 2 workers, same data, same seeds.

    python benchmarks/ray_rank.py --users 6000 --queries 20000 --seeds 3

Generated sets (:mod:`mlsd.simulation.generated`): user-item preferences from latent tastes (each
user's last items held out) and graded query groups. The two-tower model trains a fixed number of
epochs (its in-batch negatives gathered across workers: a step's batch is the embedded one);
LambdaMART a fixed number of rounds (no early stopping), each Ray worker holding whole queries.
``*_rows_per_s_N`` is pairs x epochs (rows x rounds) over the fit loop's own seconds (Ray Train's
worker start, the shard read and the checkpoint are in ``*_wall_s_N``); ``*_efficiency`` is
rows_per_s_2 / (2 x rows_per_s_1). Quality on the held-out part from the same metric code for every
run: the tower's nDCG@10 of each user's held-out items, the ranker's mean nDCG@10 over test queries;
``*_N`` is the mean and ``*_sd_N`` the sd over ``--seeds`` model seeds (the yardstick for engine gaps).
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
    parser.add_argument("--users", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()

    from mlsd.evaluation.query_ranking import per_query
    from mlsd.evaluation.topk import topk_metrics
    from mlsd.scale.cluster import ensure_ray
    from mlsd.scale.train import RayTrainEngine
    from mlsd.simulation.generated import graded_queries, preferences
    from mlsd.training import EmbeddedEngine
    from mlsd.training.models.lambdamart import LambdaMART

    ensure_ray(num_cpus=args.cpus)
    engines = (("embedded", EmbeddedEngine()), ("1", RayTrainEngine(1)), ("2", RayTrainEngine(2)))
    prefs = preferences(users=args.users, items=2000, per_user=60, held_out=10, seed=5)
    user_items, histories = prefs.user_items, prefs.histories()
    train, test = graded_queries(args.queries, seed=5), graded_queries(args.queries // 4, seed=6)
    result: dict[str, Any] = {"tower_pairs": len(prefs.pair_users), "tower_epochs": args.epochs,
                              "ranker_rows": len(train.labels), "ranker_queries": args.queries,
                              "ranker_rounds": args.rounds, "seeds": args.seeds}
    families = ("tower", "ranker")
    runs: dict[str, list[tuple[float, float, float]]] = {f"{f}_{n}": [] for f in families for n, _ in engines}
    for seed in range(args.seeds):
        for name, engine in engines:
            started = time.perf_counter()
            model, report = engine.fit_two_tower(prefs.tower_config(epochs=args.epochs, seed=seed), prefs.users,
                                                 prefs.items, prefs.pair_users, prefs.pair_items, user_items)
            wall = time.perf_counter() - started
            top = prefs.top_k(model.user_vectors(histories), model.item_vectors(prefs.items))
            runs[f"tower_{name}"].append((len(prefs.pair_users) * args.epochs / report["seconds"],
                                          topk_metrics(top, prefs.held_out)["ndcg@10"], wall))
            ranker = LambdaMART(train.features, seed=seed, rounds=args.rounds)
            started = time.perf_counter()
            fitted = ranker.fit(train.columns, train.labels, train.groups, engine=engine)
            wall = time.perf_counter() - started
            ndcg = per_query(test.labels, ranker.predict(test.columns), test.groups, "ndcg@10").mean()
            runs[f"ranker_{name}"].append((len(train.labels) * args.rounds / fitted["seconds"], float(ndcg), wall))
    for key, values in runs.items():
        speed, quality, walls = (np.array(v) for v in zip(*values, strict=True))
        family, name = key.split("_")
        result |= {f"{family}_rows_per_s_{name}": round(float(speed.mean())),
                   f"{family}_ndcg@10_{name}": round(float(quality.mean()), 5),
                   f"{family}_ndcg@10_sd_{name}": round(float(quality.std(ddof=1)), 5) if len(quality) > 1 else None,
                   f"{family}_wall_s_{name}": round(float(walls.mean()), 1)}
    for family in families:
        one, two = result[f"{family}_rows_per_s_1"], result[f"{family}_rows_per_s_2"]
        result[f"{family}_efficiency"] = round(two / (2 * one), 3)
        result[f"{family}_ndcg@10_2_minus_embedded"] = round(
            result[f"{family}_ndcg@10_2"] - result[f"{family}_ndcg@10_embedded"], 5)
    emit("ray_rank", result)


if __name__ == "__main__":
    main()
