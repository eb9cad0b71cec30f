"""``mlsd report search``: the seven steps from ``run.json``, the registry and the monitor's state."""

from __future__ import annotations

from typing import Any

from mlsd.reporting import DesignReport, pipeline_diagram
from mlsd.reporting.design import monitoring_state
from mlsd.system import Workspace
from mlsd.systems.search.build import HEADLINE, MODEL_NAME

ANCHORS = "LightGBM lambdarank with defaults on this machine: NDCG@10 0.2291 (LETOR scale), 0.5089 (linear)"


def fill_search_report(ws: Workspace, report: DesignReport) -> None:
    run: dict[str, Any] = ws.run_state() or {}
    mean, peer, served = run.get("mean", {}), run.get("pointwise_mean", {}), run.get("served", {})
    report.step(1)
    report.paragraph("Rank the documents retrieved for a query so the most relevant come first: one request "
                     "per query with up to 1,000 candidate documents, answered in a few milliseconds, every "
                     "response logged, quality followed online from relevance judgments that arrive later.")
    report.step(2)
    report.paragraph("Learning to rank: a listwise objective (LambdaMART, LightGBM lambdarank) against a pointwise "
                     "peer (regression on the grade), both over the same features. Offline metrics: NDCG@1/3/5/10 "
                     "and MRR with linear gain (all-zero queries count 0), and LETOR's official NDCG@10 and MAP.")
    report.step(3)
    report.paragraph("LETOR 4.0 MQ2008: 784 queries, 15,211 judged query-document pairs with 46 features, grades "
                     "0/1/2, five parts S1..S5. Judgments enter as events through the validated, deduplicated log; "
                     "the feature store keeps document-level features per (query, document) and query-level "
                     "features (document count, mean of each feature) per query, read point in time for training "
                     "and from the online store for serving.")
    report.step(4)
    report.table(["fold", "LambdaMART valid nDCG@10", "trees", "pointwise valid nDCG@10"],
                 [[f["fold"], f["lambdamart"]["selection"]["valid_ndcg@10"], f["lambdamart"]["selection"]["trees"],
                   f["pointwise"]["selection"]["valid_ndcg@10"]] for f in run.get("folds", [])])
    report.paragraph(f"Settings per family chosen on the validation part only; each model is a bag of "
                     f"{run.get('settings', {}).get('seeds', '?')} early-stopped fits.")
    report.step(5)
    report.table(["model", *HEADLINE], [["LambdaMART", *(mean.get(k) for k in HEADLINE)],
                                        ["pointwise", *(peer.get(k) for k in HEADLINE)]])
    report.table(["fold", *HEADLINE], [[f["fold"], *(f.get(k) for k in HEADLINE)] for f in run.get("folds", [])])
    report.paragraph(f"Anchor: {ANCHORS}. Mean over the test parts of the five folds.")
    report.step(6)
    report.svg(pipeline_diagram([
        ("Event log", "LETOR judgments as events, validated and deduplicated"),
        ("Feature store", "document features per (query, doc); query count and means per query"),
        ("Training", "LambdaMART and pointwise bags, selected on validation"),
        ("MLflow registry", f"{MODEL_NAME}: champion v{served.get('champion', '?')} "
                            f"({served.get('champion_family', '?')}), challenger v{served.get('challenger', '-')}"),
        ("Service", "POST /v1/search/rank; online features; A/B by hashed query"),
        ("Feature + label logs", "per request: documents, features, scores; graded labels per shown item"),
        ("Monitor", "drift per window; online nDCG@10, hit@10, MRR per arm"),
    ]))
    report.step(7)
    report.monitor_section(monitoring_state(ws), "online ranking metrics from replayed relevance judgments.")
