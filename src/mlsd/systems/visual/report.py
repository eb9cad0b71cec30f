"""``mlsd report visual``: the seven steps from ``run.json``, the registry and the monitor's state."""

from __future__ import annotations

from typing import Any

from mlsd.reporting import DesignReport, pipeline_diagram
from mlsd.reporting.design import monitoring_state
from mlsd.system import Workspace
from mlsd.systems.visual.build import MODEL_NAME
from mlsd.systems.visual.system import FAMILIES, METRICS

ANCHOR = "raw MobileNet features measured before: 82.75% same-article-type precision@1 (400 images)"
POOLING_TEXT = {
    "avg": "The vector is the model's own 1024-d average pool.",
    "gem": "The vector pools the model's last two resolutions (7x7x1024 and 14x14x512) by generalized mean "
           "(p = 3), each part L2-normalized: 1536-d; the model's own average pool is kept as the raw_avgpool "
           "baseline.",
}


def fill_visual_report(ws: Workspace, report: DesignReport) -> None:
    run: dict[str, Any] = ws.run_state() or {}
    models, served, training = run.get("models", {}), run.get("served", {}), run.get("training", {})
    report.step(1)
    report.paragraph("Given a photo of a product, show visually similar products from the catalogue: one request "
                     "per image, answered in tens of milliseconds on CPU, each result list logged, quality followed "
                     "online from the shopper's clicks.")
    report.step(2)
    report.paragraph("Image retrieval by embedding: an image encoder and a learned projection map images to "
                     "vectors where products of the same article type lie close; nearest neighbours in a FAISS "
                     "index. Offline: precision@1, precision@10, mAP@10 and Recall@10 (a relevant item in the top "
                     "10) by same article type, and by same type and colour.")
    report.step(3)
    report.paragraph(f"Fashion Product Images subset: {run.get('products', '?')} product images; "
                     f"{run.get('queries', '?')} products held out as queries, a gallery of {run.get('gallery', '?')}. "
                     f"Each image's MobileNet v1 vector ({run.get('encoder', '?')}) is a vector feature of the "
                     f"feature store; the encoder's version is part of the view's and the models' lineage. "
                     f"{POOLING_TEXT.get(run.get('pooling', 'avg'), '')}")
    report.step(4)
    seeds = run.get("seeds", {})
    settings = training.get("settings", {})
    report.paragraph(f"An ensemble of {settings.get('members', '?')} projections, each trained with "
                     f"{settings.get('loss', '?')} metric learning on the gallery's article types "
                     f"only from its own seed; {epochs_text(training.get('epochs'))}, validation precision@1 "
                     f"{training.get('best_valid_precision@1', '?')} (validation queries from the gallery); served "
                     f"concatenated with the raw features at alpha {training.get('alpha', {}).get('chosen', '?')}, "
                     f"chosen on validation. Over {seeds.get('n', '?')} training seeds the served model's test "
                     f"precision@1 is {seeds.get('precision@1_mean', float('nan')):.4f} ± "
                     f"{seeds.get('precision@1_sd', float('nan')):.4f}.")
    report.step(5)
    report.table(["model", "by", *METRICS],
                 [[family, by, *(models[family][by][k] for k in METRICS)] for family in FAMILIES
                  if family in models for by in ("article_type", "type_colour")])
    report.paragraph(f"Anchor: {ANCHOR}. Intervals in run.json (bootstrap over queries).")
    report.step(6)
    dim = run.get("dim", 1024)
    report.svg(pipeline_diagram([
        ("Catalogue images", "verified digest; one vector per product"),
        ("Embedding stage", f"MobileNet v1 TFLite -> {dim}-d vector feature view"),
        ("Training", f"{settings.get('members', '?')} projections {dim} -> {settings.get('out', '?')} (metric "
                     "learning), early stopping on validation"),
        ("MLflow registry", f"{MODEL_NAME}: champion v{served.get('champion', '?')} "
                            f"({served.get('champion_family', '?')}) with its gallery index"),
        ("Service", "POST /v1/visual/search: decode, embed, project, search"),
        ("Feature + label logs", "per request: shown products, similarities; clicks as labels"),
        ("Monitor", "drift of similarities; online hit rate and nDCG per window"),
    ]))
    report.step(7)
    report.monitor_section(monitoring_state(ws), "online hit@10 and nDCG from replayed clicks on same-type products.")


def epochs_text(epochs: Any) -> str:
    """The epochs each member trained for (early stopping), as a phrase."""
    if isinstance(epochs, list):
        return f"{', '.join(map(str, epochs))} epochs per member"
    return f"{epochs if epochs is not None else '?'} epochs"
