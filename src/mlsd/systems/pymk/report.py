"""``mlsd report pymk``: the seven steps from ``run.json``, the registry and the monitor's state."""

from __future__ import annotations

from typing import Any

from mlsd.reporting import DesignReport, pipeline_diagram
from mlsd.reporting.design import monitoring_state
from mlsd.system import Workspace
from mlsd.systems.pymk.build import MODEL_NAME

ANCHORS = "node2vec paper 0.968; SEAL authors' re-run of node2vec 0.9905; Adamic–Adar measured here before 0.9806"


def fill_pymk_report(ws: Workspace, report: DesignReport) -> None:
    run: dict[str, Any] = ws.run_state() or {}
    a, b, c = run.get("node2vec_protocol", {}), run.get("recommend", {}), run.get("temporal")
    served, pre = run.get("served", {}), run.get("precompute", {})
    report.step(1)
    report.paragraph("Suggest people a user may know: a list per user, read in about a millisecond when the page "
                     "opens; a new friendship must change the suggestions it affects at once.")
    report.step(2)
    report.paragraph("Link prediction framed as ranking: candidates are friends of friends, a model scores each "
                     "(user, candidate) pair, the top of each user's list is shown. Offline: ROC-AUC on node2vec's "
                     "protocol, recall/mAP/nDCG@10 of held-out friends, average precision of new contacts in time.")
    report.step(3)
    report.paragraph("SNAP ego-Facebook (4,039 users, 88,234 friendships) and SNAP CollegeMsg (59,835 timestamped "
                     "messages). Friendships enter as events (one per side) through the validated, deduplicated log; "
                     "the stream view user_friends keeps each user's friend count and latest friends. Pair features "
                     "by sparse algebra: common neighbours, Adamic–Adar, resource allocation, Jaccard, preferential "
                     "attachment, degrees, and the cosine of DeepWalk-style node embeddings.")
    report.step(4)
    report.paragraph(f"LightGBM over the pair features, early-stopped on a validation slice; for the top-k "
                     f"framing it is fitted one level down (20% of the training graph's edges hidden again), never "
                     f"on the test edges. Promotion: {served.get('promoted_on', '?')}.")
    report.step(5)
    report.table(["protocol", "metric", "ranker", "95% CI", "Adamic–Adar", "95% CI"], [
        ["(a) node2vec", "ROC-AUC", a.get("auc"), a.get("auc_ci95"), a.get("adamic_adar_auc"),
         a.get("adamic_adar_auc_ci95")],
        *[["(b) top-10", m, b.get(m), b.get(f"{m}_ci95"), b.get(f"adamic_adar_{m}"), b.get(f"adamic_adar_{m}_ci95")]
          for m in ("recall@10", "map@10", "ndcg@10")],
        *([["(c) CollegeMsg", "AP", c.get("ap"), c.get("ap_ci95"), c.get("adamic_adar_ap"),
            c.get("adamic_adar_ap_ci95")], ["(c) CollegeMsg", "AP recency", c.get("recency_ap"),
                                           c.get("recency_ap_ci95"), "", ""]] if c else []),
    ])
    report.paragraph(f"Anchors for (a): {ANCHORS}. Over {a.get('seeds', {}).get('n', '?')} seeds (a): AUC "
                     f"{a.get('seeds', {}).get('auc_mean', float('nan')):.4f} ± "
                     f"{a.get('seeds', {}).get('auc_sd', float('nan')):.4f}.")
    report.step(6)
    report.paragraph(f"Batch precompute: {pre.get('users', '?')} users, {pre.get('candidate_rows', '?')} candidate "
                     f"pairs in {pre.get('seconds', '?')} s ({pre.get('rows_per_s', '?')} rows/s), written as a "
                     f"Parquet table and materialized to the online store.")
    report.svg(pipeline_diagram([
        ("Event log", "friendships, validated and deduplicated"),
        ("Feature store", "user_friends (stream); pymk_lists (batch precompute)"),
        ("Training", "LightGBM over sparse-algebra pair features and node embeddings"),
        ("MLflow registry", f"{MODEL_NAME}: champion v{served.get('champion', '?')} "
                            f"({served.get('champion_family', '?')})"),
        ("Service", "GET /v1/pymk/{user_id}: precomputed list, or the online path when stale"),
        ("Feature + label logs", "per request: listed friends, degrees, scores; held-out friendships as labels"),
        ("Monitor", "drift; online nDCG@10, hit@10, MRR per window"),
    ]))
    report.step(7)
    report.monitor_section(monitoring_state(ws), "online top-10 metrics from held-out friendships.")
