"""``mlsd report harmful``: the seven steps from ``run.json``, the registry and the monitor's state."""

from __future__ import annotations

from typing import Any

from mlsd.reporting import DesignReport, pipeline_diagram
from mlsd.reporting.design import monitoring_state
from mlsd.system import Workspace
from mlsd.systems.harmful.build import MODEL_NAME
from mlsd.systems.harmful.system import CLASSES, FAMILIES

ANCHORS = ("the paper's notebook: hate F1 0.51 (P 0.44 / R 0.59), weighted F1 0.90; TF-IDF + LR measured here "
           "before: hate F1 0.458")


def fill_harmful_report(ws: Workspace, report: DesignReport) -> None:
    run: dict[str, Any] = ws.run_state() or {}
    models, served, split = run.get("models", {}), run.get("served", {}), run.get("split", {})
    report.step(1)
    report.paragraph("Find harmful posts as they are published: per post, the probability of hate speech, of "
                     "offensive language and of neither, and an action (remove, demote, allow) with a reviewer "
                     "queue ordered by P(hate); a few milliseconds per post, each decision logged, quality "
                     "followed online from moderators' decisions that arrive later.")
    report.step(2)
    report.paragraph("Multiclass classification with a rare, costly class (hate, 6% of posts). Offline: per-class "
                     "precision, recall, F1 and PR-AUC, macro and weighted F1, the confusion matrix. The action "
                     "thresholds are chosen on validation (t_hate maximizes hate F1, then t_offensive offensive "
                     "F1); probabilities are calibrated per class (matrix scaling on validation).")
    report.step(3)
    report.paragraph(f"Davidson et al. 2017: {run.get('posts', '?')} tweets labelled by the annotators' majority. "
                     f"Split: {split.get('protocol', '?')}; train {split.get('train', '?')}, validation "
                     f"{split.get('valid', '?')}, test {split.get('test', '?')} (hate/offensive/neither "
                     f"{split.get('test_counts', '?')}). Posts enter through the validated, deduplicated event log; "
                     f"each post's MiniLM embedding ({run.get('encoder', '?')}) is a vector feature of the feature "
                     f"store (offline Parquet, online store), its encoder version part of the view's lineage.")
    report.step(4)
    report.table(["model", "chosen on validation"],
                 [[f, {k: v for k, v in models[f]["selection"].items() if k != "history"}]
                  for f in FAMILIES if f in models])
    report.step(5)
    report.table(["model", *[f"{c} F1" for c in CLASSES], "hate PR-AUC", "macro F1", "weighted F1", "hate F1 95% CI"],
                 [[f, *[models[f][c]["f1"] for c in CLASSES], models[f]["hate"]["pr_auc"], models[f]["macro_f1"],
                   models[f]["weighted_f1"], models[f]["ci95"]["hate_f1"]] for f in FAMILIES if f in models])
    seeds = run.get("seeds_by_family", {})
    report.table(["model (split seeds 42-46)", "hate F1 mean", "sd", "weighted F1 mean", "sd"],
                 [[f, s["hate_f1_mean"], s["hate_f1_sd"], s["weighted_f1_mean"], s["weighted_f1_sd"]]
                  for f, s in seeds.items()])
    report.paragraph(f"Anchors: {ANCHORS}. Intervals: bootstrap over test posts.")
    report.step(6)
    report.svg(pipeline_diagram([
        ("Event log", "posts, validated and deduplicated"),
        ("Embedding stage", "all-MiniLM-L6-v2 (packaged weights) -> 384-d vector feature view"),
        ("Training", "TF-IDF + LR, MiniLM head, MiniLM fine-tuned, blends; calibration + thresholds on validation"),
        ("MLflow registry", f"{MODEL_NAME}: champion v{served.get('champion', '?')} "
                            f"({served.get('champion_family', '?')}), challenger v{served.get('challenger', '-')}"),
        ("Service", "POST /v1/harmful/classify: the text embedded in the request path, action per post"),
        ("Feature + label logs", "per post: probabilities, length, predicted class; moderator decisions as labels"),
        ("Monitor", "drift of probabilities, class prevalence per window; online hate precision / recall"),
    ]))
    report.step(7)
    report.monitor_section(monitoring_state(ws), "online precision and recall of *remove* (hate) at the served "
                                                 "threshold, from replayed moderator decisions.")
