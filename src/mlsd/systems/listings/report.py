"""``mlsd report listings``: the seven steps from ``run.json``, the registry and the monitor's state."""

from __future__ import annotations

from typing import Any

from mlsd.reporting import DesignReport, pipeline_diagram
from mlsd.reporting.design import monitoring_state
from mlsd.system import Workspace
from mlsd.systems.listings.build import MODEL_NAME

ANCHORS = ("measured before on this sample: last-item transitions HR@20 62.6 / MRR@20 32.0 (definition not "
           "recorded); SR-GNN's own code with default settings 12.1 / 3.4")
ROWS = (("session_blend", "blend: transitions + recency + skip-gram ANN"),
        ("transitions_recency", "blend without the embeddings"), ("embedding_ann", "embeddings alone (ANN)"),
        ("last_item", "last-item transitions"), ("covisitation", "item co-visitation"))


def fill_listings_report(ws: Workspace, report: DesignReport) -> None:
    run: dict[str, Any] = ws.run_state() or {}
    models, served, seeds = run.get("models", {}), run.get("served", {}), run.get("seeds", {})
    report.step(1)
    report.paragraph("While a user browses, suggest the listings they are likely to click next, from what they "
                     "clicked in this session: one request per click, answered in a few milliseconds, the click "
                     "itself updating the session's state.")
    report.step(2)
    report.paragraph("Session-based next-item prediction: each prefix of a session predicts its next click. "
                     "Offline metrics HR@20 and MRR@20 on SR-GNN's test prefixes; online the same from replayed "
                     "clicks.")
    report.step(3)
    report.paragraph(f"Diginetica sample (SR-GNN's file), preprocessed as SR-GNN does: sessions of one click "
                     f"dropped, items seen fewer than 5 times dropped, the last 7 days as test, every prefix predicts "
                     f"its next item: {run.get('train_sessions', '?')} training sessions, "
                     f"{run.get('test_sessions', '?')} test sessions, {run.get('items', '?')} items, "
                     f"{run.get('test_prefixes', '?')} test prefixes. Clicks enter through the validated, "
                     f"deduplicated event log; the session state (click count, last 10 items) is a streaming "
                     f"aggregation view of the feature store.")
    report.step(4)
    report.table(["seed", "weights", "valid HR@20", "valid MRR@20"],
                 [[s["seed"], s["weights"], s["valid"]["hr@20"], s["valid"]["mrr@20"]]
                  for s in run.get("selection", [])])
    report.paragraph(f"Skip-gram item embeddings (gensim Word2Vec {run.get('embedding', {})}) in a FAISS HNSW index; "
                     f"blend weights chosen on {run.get('selected_on', 'validation')}.")
    report.step(5)
    report.table(["model", "HR@20", "95% CI", "MRR@20", "95% CI"],
                 [[label, models[key]["hr@20"], models[key]["ci95"]["hr@20"], models[key]["mrr@20"],
                   models[key]["ci95"]["mrr@20"]] for key, label in ROWS if key in models])
    report.paragraph(f"Intervals: bootstrap over test sessions. Over {seeds.get('n', '?')} embedding seeds: HR@20 "
                     f"{seeds.get('hr@20_mean', float('nan')):.1f} ± {seeds.get('hr@20_sd', float('nan')):.1f}, "
                     f"MRR@20 {seeds.get('mrr@20_mean', float('nan')):.1f} ± "
                     f"{seeds.get('mrr@20_sd', float('nan')):.1f}. Anchors {ANCHORS}.")
    report.step(6)
    report.svg(pipeline_diagram([
        ("Event log", "clicks, validated and deduplicated; the serving clicks appended in groups"),
        ("Stream feature store", "session_state: click count and last 10 items per session"),
        ("Training", "transitions, skip-gram embeddings, blend chosen on validation"),
        ("MLflow registry", f"{MODEL_NAME}: champion v{served.get('champion', '?')} "
                            f"({served.get('champion_family', '?')}), challenger v{served.get('challenger', '-')}"),
        ("Service", "POST /v1/listings/similar: the click updates the session, then candidates"),
        ("Feature + label logs", "per request: listed items, their signals and scores; the next click as label"),
        ("Monitor", "drift of listed items' signals; online hit@20 and MRR per window"),
    ]))
    report.step(7)
    report.monitor_section(monitoring_state(ws), "online hit@20 and MRR from the replayed next clicks.")
