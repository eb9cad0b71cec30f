"""``mlsd report recs``: the video-recommendation design report in the book's seven steps, from ``run.json``.

Every figure comes from what ``mlsd run recs`` measured (and ``benchmarks/results`` when the latency
and ANN benchmarks were run); a missing part is said to be missing, never invented.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlsd.core.errors import MlsdError
from mlsd.reporting import Budget, DesignReport, monitoring_state, pipeline_diagram
from mlsd.system import Workspace
from mlsd.systems.recs.run import PUBLISHED_ML100K
from mlsd.systems.recs.tables import METRICS, width

BENCHMARKS = Path(__file__).resolve().parents[4] / "benchmarks" / "results"


def _row(label: str, m: dict[str, Any]) -> list[Any]:
    interval = m.get("ci95", {}).get("ndcg@10")
    return [label, *(round(m[k], 4) if k in m else "-" for k in METRICS),
            f"[{interval[0]:.4f}, {interval[1]:.4f}]" if interval else "-"]


def fill_recs_report(home: Path, report: DesignReport) -> None:
    """The seven steps of the recommendation system under ``home``, from ``run.json`` and the monitor."""
    run_file = Workspace(home).run_file
    if not run_file.exists():
        raise MlsdError(f"{run_file} not found: run `mlsd run recs --data DIR` first")
    run = json.loads(run_file.read_text())
    a, b = run["protocol_a"], run["protocol_b"]
    report.step(1)
    report.paragraph("Recommend 10 movies a user has not seen, for known users and for new ones, within 20 ms "
                     f"at 200 requests/s. Data: {run['dataset']}; a rating is a watch (implicit feedback).")
    report.step(2)
    report.paragraph("Retrieval then ranking: candidates from three sources are scored by a learned ranker and "
                     "re-ranked for diversity and freshness. Offline metrics: nDCG@10, precision@10, recall@10, "
                     "MAP (Microsoft Recommenders' definitions), catalogue coverage and genre diversity.")
    report.step(3)
    report.bullets([
        "Ratings are ingested as events into the event log; user attributes and release years are batch views.",
        "Streaming features from the feature store, point-in-time: the user's last five items (nth_last), rating "
        "count and mean, time since the last rating; item popularity over 7 and 30 days and all time.",
        f"Protocol A: Microsoft Recommenders' stratified 75/25 split (by item, seed 42). Protocol B: time split at "
        f"{b['cut_off']}, "
        f"{b['users']} test users ({b.get('cold_start_users', 0)} cold-start).",
    ])
    report.step(4)
    report.svg(pipeline_diagram([("two-tower + HNSW", "user/item towers, log-Q in-batch softmax"),
                                 ("co-visitation", "EASE/DLAE weights + BiVAE blend"), ("popularity", "counts"),
                                 ("LambdaMART", "ranker, promoted if it beats co-visitation beyond chance"),
                                 ("MMR + freshness", "re-ranking")]))
    report.table(["protocol", "ranker 5-fold nDCG@10", "co-visitation 5-fold nDCG@10", "gain, 95% lower bound",
                  "ranker serves"], [
        [name, round(m["training"]["ranker"]["valid_ndcg@10_ranker"], 4),
         round(m["training"]["ranker"]["valid_ndcg@10_co_visitation"], 4),
         round(m["training"]["ranker"]["valid_gain_lower_bound"], 4), m["training"]["ranker"]["promoted"]]
        for name, m in (("A", a), ("B", b))])
    report.line_chart([{"name": f"protocol {p}", "points": [[i + 1, v] for i, v in
                                                            enumerate(m["training"]["two_tower_loss"])]}
                       for p, m in (("A", a), ("B", b))],
                      title="two-tower training loss per epoch", xlabel="epoch", ylabel="in-batch softmax loss")
    report.step(5)
    header = ["model", *METRICS, "nDCG@10 95% interval (bootstrap over users)"]
    rows = [_row("mlsd protocol A", a), _row("mlsd A before re-ranking", a["before_rerank"])]
    if run["dataset"] == "ml-100k":
        rows += [_row(f"{k} (published)", v) for k, v in PUBLISHED_ML100K.items()]
    rows += [_row("mlsd protocol B", b), _row("mlsd B before re-ranking", b["before_rerank"])]
    report.table(header, rows)
    report.table(["protocol", "union", *a["candidate_recall_by_source"], "coverage", "diversity"], [
        [p, round(m[width(m)], 4), *(round(v, 4) for v in m["candidate_recall_by_source"].values()),
         round(m["coverage"], 4), round(m["diversity"], 4)] for p, m in (("A", a), ("B", b))])
    new = b["new_items"]
    report.paragraph(f"New items in protocol B (no rating before the cut-off, embedded by the content tower alone): "
                     f"{new['test_pairs']} test pairs, candidate recall@500 {new[width(new)]:.4f}, "
                     f"recall@10 {new['recall@10']:.4f}.")
    report.step(6)
    found = {n: json.loads((BENCHMARKS / f"{n}.json").read_text()) for n in ("recs_latency", "ann")
             if (BENCHMARKS / f"{n}.json").exists()}
    served = run["served"]
    lines = [f"Registered model recs-movielens v{served['champion']} ({served['champion_variant']}, champion) serves "
             f"POST /v1/recs/recommend and v{served['challenger']} is its challenger for A/B tests (promotion on "
             f"{served['valid_users']} validation users: gain {_signed(served['gain'])}, 95% lower bound "
             f"{_signed(served['gain_lower_bound'])}); the service starts at protocol B's cut-off and the "
             f"{served['held_out_ratings']:,} ratings after it are the replayed traffic; "
             "per-stage timings are on /metrics. POST /v1/recs/ratings takes new ratings: durable in the event log "
             "before the reply, then in the online features and the rater's seen items."]
    if "recs_latency" in found:
        r = found["recs_latency"]
        lines.append(f"Latency at 200 req/s: p99 {r['p99_ms_200rps']} ms, {r['errors']} errors (target p99 <= 20 ms).")
        report.budgets([Budget("p99 latency at 200 req/s (benchmarks/recs_latency.py)", r["p99_ms_200rps"], 20.0)])
    if "ann" in found:
        r = found["ann"]
        lines.append(f"ANN over {r['items']:,} items: recall@100 {r['recall_at_100']}, p99 {r['p99_ms']} ms.")
    if len(lines) == 1:
        lines.append("No benchmark results yet: run benchmarks/recs_latency.py and benchmarks/ann.py.")
    report.bullets(lines)
    report.step(7)
    report.paragraph("Every response is written to the feature log with its ranking features, model version and "
                     "the stage that proposed each item, so training and serving use the same values.")
    report.monitor_section(monitoring_state(Workspace(home)), "online nDCG@10, hit rate and MRR per arm from the "
                           "later ratings of replayed users (labels joined by request id).")


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.4f}"
