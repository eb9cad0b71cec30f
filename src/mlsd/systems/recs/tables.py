"""The tables `mlsd run recs` prints and the ``--json`` summary it writes."""

from __future__ import annotations

from typing import Any

from mlsd.systems.recs.run import PUBLISHED_ML100K

METRICS = ("ndcg@10", "precision@10", "recall@10", "map")


def width(metrics: dict[str, Any]) -> str:
    """The key of the candidate recall at the candidate list's width (500 unless configured otherwise)."""
    return next(k for k in metrics if k.startswith("candidate_recall@"))


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """The ``--json`` shape: headline metrics per protocol."""
    out: dict[str, Any] = {}
    for name in ("protocol_a", "protocol_b"):
        m = results[name]
        out[name] = {**{k: m[k] for k in METRICS}, "ci95": m["ci95"], "candidate_recall@500": m[width(m)]}
        if name == "protocol_b":
            out[name].update(coverage=m["coverage"], diversity=m["diversity"],
                             new_item_candidate_recall=m["new_items"][width(m)])
        if "ndcg@10_seeds" in m:
            out[name]["ndcg@10_seeds"] = m["ndcg@10_seeds"]
    if "peers" in results:
        out["peers"] = results["peers"]
    for name, short in (("protocol_a", "ablation_a"), ("protocol_b", "ablation_b")):
        if "ablation" in results[name]:
            out[short] = results[name]["ablation"]["stages"]
    return out


def format_tables(results: dict[str, Any]) -> str:
    a, b = results["protocol_a"], results["protocol_b"]
    lines = [f"Protocol A: {results['dataset']}, Microsoft Recommenders' stratified 75/25 split (by item, seed 42), "
             "top-10, seen items removed",
             "  (95% intervals: bootstrap over test users)",
             f"  {'model':34s} {'nDCG@10':>8s} {'(95% interval)':>16s} {'P@10':>8s} {'R@10':>8s} {'MAP':>8s}"]

    def row(label: str, m: dict[str, Any]) -> str:
        cells = [f"{m[k]:8.4f}" if k in m else f"{'-':>8s}" for k in METRICS]
        interval = m.get("ci95", {}).get("ndcg@10")
        cells.insert(1, f"[{interval[0]:.4f}, {interval[1]:.4f}]" if interval else f"{'':16s}")
        return f"  {label:34s} {' '.join(cells)}"

    lines.append(row("mlsd (full pipeline)", a))
    lines.append(row("mlsd before re-ranking", a["before_rerank"]))
    for name, peer in results.get("peers", {}).items():
        lines.append(row(f"{name} (cornac, same split)", {"ndcg@10": peer["ndcg@10_seeds"]["values"][0],
                                                        "ci95": peer["ci95"]}))
    if "ndcg@10_seeds" in a:
        seeds = a["ndcg@10_seeds"]
        lines.append(f"  nDCG@10 over split seeds {', '.join(map(str, seeds['seeds']))} (mean ± sd): mlsd "
                     f"{seeds['mean']:.4f} ± {seeds['sd']:.4f}; " + "; ".join(
                         f"{name} {p['ndcg@10_seeds']['mean']:.4f} ± {p['ndcg@10_seeds']['sd']:.4f}"
                         for name, p in results.get("peers", {}).items()))
    if results["dataset"] == "ml-100k":
        for name, m in PUBLISHED_ML100K.items():
            lines.append(row(f"{name} (published)", m))
    lines.append(f"  {width(a).replace('_', ' ')}: union {a[width(a)]:.4f}; " + ", ".join(
        f"{k} {v:.4f}" for k, v in a["candidate_recall_by_source"].items()))
    lines.append(_ranker_line(a))
    lines += _ablation_lines(a)
    lines.append("")
    lines.append(f"Protocol B: time split at {b['cut_off']} (ranker labels from {b['ranker_labels_from']}), "
                 f"{b['users']} test users, {b.get('cold_start_users', 0)} of them cold-start")
    lines.append(f"  {'model':34s} {'nDCG@10':>8s} {'(95% interval)':>16s} {'P@10':>8s} {'R@10':>8s} {'MAP':>8s} "
                 f"{'coverage':>9s} {'diversity':>9s}")
    lines.append(row("mlsd (full pipeline)", b) + f" {b['coverage']:9.4f} {b['diversity']:9.4f}")
    lines.append(row("mlsd before re-ranking", b["before_rerank"]) + f" {'':9s} {b['diversity_before_rerank']:9.4f}")
    if "cold_start" in b:
        lines.append(row("  cold-start users only", b["cold_start"]))
    lines.append(f"  {width(b).replace('_', ' ')}: union {b[width(b)]:.4f}; " + ", ".join(
        f"{k} {v:.4f}" for k, v in b["candidate_recall_by_source"].items()))
    new = b["new_items"]
    lines.append(f"  new items (no rating before the cut-off; content-tower vectors): {new['test_pairs']} test pairs, "
                 f"{width(new).replace('_', ' ')} {new[width(new)]:.4f}, R@10 {new['recall@10']:.4f}")
    lines.append(_ranker_line(b))
    lines += _ablation_lines(b)
    return "\n".join(lines)


def _ablation_lines(metrics: dict[str, Any]) -> list[str]:
    """The ablation table: each stage's nDCG@10 and the served pipeline's paired gain over it."""
    if "ablation" not in metrics:
        return []
    ablation = metrics["ablation"]
    lines = [f"  ablation ({ablation['users']} test users; 95% bootstrap intervals):",
             f"    {'stage':32s} {'nDCG@10':>8s} {'(95% interval)':>16s}  {'pipeline minus stage (95% interval)':>36s}"]
    for stage, row in ablation["stages"].items():
        gain = row["pipeline_minus_stage"]
        lines.append(f"    {stage:32s} {row['ndcg@10']:8.4f} [{row['ci95'][0]:.4f}, {row['ci95'][1]:.4f}]  "
                     f"{gain['mean']:+.4f} [{gain['ci95'][0]:+.4f}, {gain['ci95'][1]:+.4f}]")
    verdict = "beats" if ablation["pipeline_beats_best_single_stage"] else "does not beat"
    lines.append(f"    the pipeline {verdict} its best single stage ({ablation['best_single_stage']}) at 95%")
    return lines


def _ranker_line(metrics: dict[str, Any]) -> str:
    ranker = metrics["training"]["ranker"]
    return (f"  ranker: {'promoted' if ranker['promoted'] else 'kept out'} (5-fold held-out nDCG@10 "
            f"{ranker['valid_ndcg@10_ranker']:.4f} vs co-visitation {ranker['valid_ndcg@10_co_visitation']:.4f}, "
            f"gain's 95% lower bound {ranker['valid_gain_lower_bound']:+.4f})")
