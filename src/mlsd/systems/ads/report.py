"""``mlsd report ads``: the design report in the book's seven steps, filled from what a run built and measured.

Everything comes from the system's home directory: ``run.json`` (datasets, sizes, offline metrics),
the reliability / ROC artefacts, the registry's aliases, ``replay.json`` (latency, arms) and the
monitor's published state (drift, alerts, online metrics, A/B). Missing parts (no replay yet) are
said to be missing, never invented.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlsd.monitoring.outcomes import drift_outcome
from mlsd.monitoring.runner import read_state
from mlsd.registry import CHALLENGER, CHAMPION, ModelRegistry
from mlsd.reporting import Budget, DesignReport, pipeline_diagram
from mlsd.systems.ads.run import RUN_FILE, model_name

REPLAY_FILE = "replay.json"
WHY = {
    "logreg": "logistic regression on hashed features: the calibrated, cheap baseline every ad system keeps",
    "lgbm": "gradient-boosted trees: strong on counts and ids, robust with few positives",
    "dcn_v2": "DCN-v2: explicit feature crosses plus a deep tower, the book's choice for ad click prediction",
    "ffm": "field-aware factorization machine: pairwise interactions per field pair",
}


def _json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def write_report(home: Path, path: Path) -> Path:
    """Write the HTML report for the ads system under ``home`` to ``path`` (with its registry table)."""
    from mlsd.reporting import write_design_report
    from mlsd.system import Workspace, load_system

    return write_design_report(load_system("ads"), Workspace(home), path)


def fill_report(home: Path, report: DesignReport) -> None:
    """The seven steps of the ads system under ``home``, from what its run and replay measured."""
    run = _json(home / RUN_FILE)
    if run is None:
        raise FileNotFoundError(f"{home / RUN_FILE} not found: run `mlsd run ads` (or `make demo`) first")
    dataset, results = run["dataset"], run["results"][run["dataset"]]
    sizes, views = run.get("sizes", {}).get(dataset, {}), run.get("views", {})
    replayed, state = _json(home / REPLAY_FILE), read_state(home / "monitoring")
    registry = ModelRegistry(home)
    name = model_name(dataset)
    aliases = {}
    for alias in (CHAMPION, CHALLENGER):
        try:
            aliases[alias] = registry.version_for(name, alias)
        except Exception:
            continue
    report.title = f"Ad click prediction ({dataset}): design report"
    latency = (replayed or {}).get("latency_ms", {})

    report.step(1)
    report.bullets([
        "Predict, for each candidate ad of a request, the probability of a click (TalkingData: an app "
        "download), calibrated, because the auction multiplies it by the bid.",
        "Latency budget: p99 ≤ 5 ms for one candidate, ≤ 20 ms for 100 candidates; ≥ 2,000 requests/s on 2 cores.",
        f"Scale here: {sizes.get('events', 0):,} logged events; "
        f"{(replayed or {}).get('requests', 0):,} requests replayed through the service.",
        "Features fresh within seconds (stream processor), no training/serving skew (one definition, "
        "features logged at inference).",
    ])
    report.step(2)
    report.bullets([
        "ML task: pointwise binary classification over (user context, ad) pairs; rank candidates by probability.",
        "Label: is_attributed (a download after the click) on TalkingData; a click on the generated marketplace.",
        "Objective: log loss (normalized entropy reported), with calibration checked as predicted / observed.",
    ])
    report.step(3)
    report.table(["dataset", "events", "train rows", "validation rows", "test rows", "positives"],
                 [[dataset, sizes.get("events"), sizes.get("train"), sizes.get("valid"), sizes.get("test"),
                   sizes.get("positives")]])
    report.paragraph("Point-in-time correctness: every training row's features come from the feature store's "
                     "ASOF join (DuckDB) at the row's own timestamp, so no value from after the label's time "
                     "is used; serving reads the same definitions from the online store, kept current by the "
                     "stream processor. Split by time: the last day is the test period, the day before validates.")
    report.table(["feature view", "features"], [[v, ", ".join(f)] for v, f in views.items()])
    report.step(4)
    report.table(["model", "why"], [[k, WHY.get(k, "")] for k in results])
    report.paragraph(f"Registered in MLflow as {name}: champion v{aliases.get(CHAMPION, '?')} (best validation "
                     f"log loss), challenger v{aliases.get(CHALLENGER, '-')}. Negative downsampling is undone "
                     "and a Platt calibrator is fitted on the untouched validation day.")
    report.step(5)
    report.table(["model", "AUC", "PR-AUC", "log loss", "NE", "calibration", "ECE"],
                 [[k, m.get("auc"), m.get("pr_auc"), m.get("logloss"), m.get("ne"), m.get("calibration"),
                   m.get("ece")] for k, m in results.items()])
    curves = {k: _json(home / "reliability" / f"{dataset}-{k}.json") for k in results}
    report.line_chart([{"name": k, "points": list(zip(c["roc_fpr"], c["roc_tpr"], strict=True))}
                       for k, c in curves.items() if c and "roc_fpr" in c]
                      + [{"name": "chance", "points": [[0, 0], [1, 1]], "dashed": True}],
                      title="ROC on the test period", xlabel="false-positive rate", ylabel="true-positive rate")
    report.line_chart([{"name": k, "points": list(zip(c["predicted"], c["observed"], strict=True))}
                       for k, c in curves.items() if c]
                      + [{"name": "perfect", "points": [[0, 0], [max(max(c["predicted"]) for c in curves.values()
                                                                     if c), ] * 2], "dashed": True}],
                      title="Reliability on the test period (quantile bins)", xlabel="mean predicted",
                      ylabel="observed rate")
    if state and state.get("ab"):
        ab = state["ab"]
        report.paragraph(f"Online A/B test (hashed users, replay): rate difference challenger - champion "
                         f"{ab['rate_difference']:+.5f} (95% CI {ab['rate_ci95'][0]:+.5f} .. "
                         f"{ab['rate_ci95'][1]:+.5f}), two-proportion z-test p = {ab['p_value']:.4f}.")
    elif state is None:
        report.paragraph("No replay has run against this home yet: online metrics and A/B results are missing.")
    report.step(6)
    if latency:
        report.budgets([Budget("p99 latency of the replayed requests (client side, loopback HTTP)",
                               latency.get("p99"), 5.0)])
        report.table(["measure", "ms"], [[k, v] for k, v in latency.items()])
        report.paragraph("Client-side latency of the replayed requests (sequential, loopback HTTP, keep-alive); "
                         "the budget is the one-candidate p99 of step 1 (replayed requests carry several).")
    report.svg(pipeline_diagram([
        ("Event log", f"{sizes.get('events', 0):,} {dataset} events, validated, deduplicated, Parquet segments"),
        ("Feature store", f"{len(views)} views: " + ", ".join(views)),
        ("Training", "models: " + ", ".join(results) + "; downsampling + Platt calibration"),
        ("MLflow registry", f"{name}: champion v{aliases.get(CHAMPION, '?')}, challenger "
                            f"v{aliases.get(CHALLENGER, '-')}"),
        ("Service", "Starlette/uvicorn POST /v1/ads/score; SQLite online store; A/B by hashed ip"),
        ("Feature + label logs", "JSONL per request (exact vector, arm, version); POST /v1/labels"),
        ("Monitor", f"windows {(state or {}).get('window_s', 0):g} s, label delay "
                    f"{(state or {}).get('label_delay_s', 0):g} s; /metrics, /dashboard"),
    ]))
    report.step(7)
    drift_at = (replayed or {}).get("drift_at_s")
    delay, false_alarms, rate = drift_outcome(state, drift_at) if state else (None, 0, None)
    report.monitor_section(state, f"injected drift at {drift_at}: detected after {delay} event seconds; "
                           f"{false_alarms} false alarms before it (share of pre-drift windows alerting: {rate}).")
