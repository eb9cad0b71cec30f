"""`mlsd run recs`: both protocols, the metric tables beside the published ones, the model registered."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mlsd.core.atomic import atomic_write_json
from mlsd.datasets.movielens import MovieLens, load_movielens
from mlsd.systems.recs.pipeline import RecsSettings
from mlsd.systems.recs.run import PUBLISHED_ML100K, prepare_serving, run_recs

RUN_FILE = "run.json"
METRICS = ("ndcg@10", "precision@10", "recall@10", "map")


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """The ``--json`` shape: headline metrics per protocol."""
    out: dict[str, Any] = {}
    for name in ("protocol_a", "protocol_b"):
        m = results[name]
        width = next(k for k in m if k.startswith("candidate_recall@"))
        out[name] = {**{k: m[k] for k in METRICS}, "candidate_recall@500": m[width]}
        if name == "protocol_b":
            out[name].update(coverage=m["coverage"], diversity=m["diversity"],
                             new_item_candidate_recall=m["new_items"][width])
    return out


def format_tables(results: dict[str, Any]) -> str:
    a, b = results["protocol_a"], results["protocol_b"]
    lines = [f"Protocol A: {results['dataset']}, per-user stratified random 75/25 split, top-10, seen items removed",
             f"  {'model':34s} {'nDCG@10':>8s} {'P@10':>8s} {'R@10':>8s} {'MAP':>8s}"]

    def row(label: str, m: dict[str, Any]) -> str:
        cells = [f"{m[k]:8.4f}" if k in m else f"{'-':>8s}" for k in METRICS]
        return f"  {label:34s} {' '.join(cells)}"

    lines.append(row("mlsd (full pipeline)", a))
    lines.append(row("mlsd before re-ranking", a["before_rerank"]))
    if results["dataset"] == "ml-100k":
        for name, m in PUBLISHED_ML100K.items():
            lines.append(row(f"{name} (published)", m))
    lines.append(f"  candidate recall@500: union {a['candidate_recall@500']:.4f}; " + ", ".join(
        f"{k} {v:.4f}" for k, v in a["candidate_recall_by_source"].items()))
    lines.append(_ranker_line(a))
    lines.append("")
    lines.append(f"Protocol B: time split at {b['cut_off']} (ranker labels from {b['ranker_labels_from']}), "
                 f"{b['users']} test users, {b.get('cold_start_users', 0)} of them cold-start")
    lines.append(f"  {'model':34s} {'nDCG@10':>8s} {'P@10':>8s} {'R@10':>8s} {'MAP':>8s} {'coverage':>9s} "
                 f"{'diversity':>9s}")
    lines.append(row("mlsd (full pipeline)", b) + f" {b['coverage']:9.4f} {b['diversity']:9.4f}")
    lines.append(row("mlsd before re-ranking", b["before_rerank"]) + f" {'':9s} {b['diversity_before_rerank']:9.4f}")
    if "cold_start" in b:
        lines.append(row("  cold-start users only", b["cold_start"]))
    lines.append(f"  candidate recall@500: union {b['candidate_recall@500']:.4f}; " + ", ".join(
        f"{k} {v:.4f}" for k, v in b["candidate_recall_by_source"].items()))
    new = b["new_items"]
    lines.append(f"  new items (no rating before the cut-off; content-tower vectors): {new['test_pairs']} test pairs, "
                 f"candidate recall@500 {new['candidate_recall@500']:.4f}, R@10 {new['recall@10']:.4f}")
    lines.append(_ranker_line(b))
    return "\n".join(lines)


def _ranker_line(metrics: dict[str, Any]) -> str:
    ranker = metrics["training"]["ranker"]
    return (f"  ranker: {'promoted' if ranker['promoted'] else 'kept out'} (5-fold held-out nDCG@10 "
            f"{ranker['valid_ndcg@10_ranker']:.4f} vs co-visitation {ranker['valid_ndcg@10_co_visitation']:.4f}, "
            f"gain's 95% lower bound {ranker['valid_gain_lower_bound']:+.4f})")


def build_recs(home: Path, data_root: str | None, dataset: str, *, quiet: bool = False,
               users: int | None = None) -> dict[str, Any]:
    """``mlsd run recs``: both protocols, then the protocol-B model registered as champion and served.

    ``users``: keep only the first this many users (a quick build for the check kit).
    """
    started = time.perf_counter()

    def say(message: str) -> None:
        if not quiet:
            print(message, flush=True)

    data = load_movielens(dataset, data_root)
    settings = None
    if users is not None:
        data = first_users(data, users)
        settings = RecsSettings(two_tower_k=50, co_visitation_k=50, popularity_k=20, candidates=100, ranking_depth=50)
    results = run_recs(home, data_root, dataset, say=say, data=data, settings=settings)
    model = results.pop("_protocol_b_model")
    results.pop("_protocol_a_model")
    say("registering the protocol-B model and preparing the service")
    results["served_version"] = prepare_serving(home, data, model, results["protocol_b"])
    results["seconds"] = time.perf_counter() - started
    atomic_write_json(home / RUN_FILE, results)
    say(f"model recs-movielens v{results['served_version']} is champion; serve it: mlsd serve recs --home {home}")
    return results


def first_users(data: MovieLens, n: int) -> MovieLens:
    """The release cut to its first ``n`` users (dense indices 0..n-1) and their ratings; every item kept."""
    users = data.users[data.users["user"] < n].reset_index(drop=True)
    ratings = data.ratings[data.ratings["user"] < n].reset_index(drop=True)
    return MovieLens(data.name, ratings, users, data.items, data.genres, data.genre_names)
