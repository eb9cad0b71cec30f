"""``mlsd run visual``: product images -> MobileNet vector features -> projection -> gallery index -> registry.

Every product image is embedded once per encoder version into a vector feature view (offline Parquet,
materialized to the online store) and read back point in time. The encoder's vector is the model's average pool,
or with ``--pooling gem`` a GeM of its last two resolutions (:mod:`mlsd.embeddings.image`); then the
average pool is embedded too, in a view of its own, as the table's ``raw_avgpool`` row (full builds only). Two
models are registered: raw features (``raw``) and the learned projection (``projected``), each with
the gallery's FAISS index inside it; promotion compares them on the gallery's validation queries
only. The held-out queries are the table's test set and the traffic ``mlsd replay visual`` sends.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from mlsd.core.atomic import atomic_write_json
from mlsd.core.errors import MlsdError
from mlsd.core.timeutil import US_PER_S
from mlsd.embeddings.image import MODEL_FILE, POOLINGS, MobileNetEncoder
from mlsd.embeddings.table import embedding_view, vectors_at
from mlsd.evaluation.repeats import mean_sd
from mlsd.evaluation.retrieval import retrieval_report
from mlsd.features import Entity
from mlsd.monitoring.online import PREDICTION
from mlsd.monitoring.profile import DatasetProfile, NumericProfile
from mlsd.registry import Lineage, code_revision
from mlsd.registry.promotion import promote
from mlsd.system import Workspace
from mlsd.systems.visual.data import DATASET, Products, QuerySplit, load_products, query_split
from mlsd.systems.visual.model import (
    Progress,
    Projection,
    TrainSettings,
    VisualSearchModel,
    search_labels,
    train_ensemble,
)
from mlsd.systems.visual.simulate import write_traffic

MODEL_NAME = "visual-fashion"
PROFILE_FILE = "profile.json"
VIEW = "product_image"
PRODUCT = Entity("product", ("product_id",))
CATALOG_S = 1_546_300_800  # 2019-01-01 UTC: when the catalogue's images were taken in
ENCODER_DIR = "encoders"
ENCODER_FILE = "encoder.json"  # beside the model file: the pooling the served vectors were built with
K = 10
ALPHAS = (0.0, 0.2, 0.35, 0.5, 0.65, 0.8)  # weight of the raw features' cosine in the served vector
SMALL = (1500, 200, 150)  # products, queries, validation queries of a quick build
SEEDS, SMALL_SEEDS = 5, 2  # projection training seeds the spread is measured over


def evaluate(projection: Projection, raw: np.ndarray, products: Products, queries: np.ndarray,
             gallery: np.ndarray) -> dict[str, Any]:
    """Article-type and type+colour retrieval metrics of ``queries`` against ``gallery`` (rows)."""
    ids = search_labels(projection(raw[queries]), projection(raw[gallery]), K)
    hits = gallery[ids]
    both = np.char.add(np.char.add(products.article_type, "|"), products.colour)
    by_type = retrieval_report(products.article_type[queries], products.article_type[hits],
                               products.article_type[gallery], K)
    by_both = retrieval_report(both[queries], both[hits], both[gallery], K)
    return {"article_type": by_type, "type_colour": by_both}


def _public(report: dict[str, Any]) -> dict[str, Any]:
    return {view: {k: v for k, v in r.items() if k != "per_query"} for view, r in report.items()}


def build_visual(ws: Workspace, data: str | None, *, small: bool = False, progress: bool = True,
                 pooling: str = "avg") -> dict[str, Any]:
    if pooling not in POOLINGS:
        raise MlsdError(f"--pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    say: Progress = print if progress else (lambda _: None)
    started = time.perf_counter()
    ws.home.mkdir(parents=True, exist_ok=True)
    products = load_products(data)
    if small:
        products = products.subset(np.arange(SMALL[0]))
    split = query_split(len(products), *(SMALL[1:] if small else ()))
    say(f"{len(products):,} products with images; {len(split.queries):,} held-out queries, gallery "
        f"{len(split.gallery):,} ({len(split.valid):,} of them validation queries)")
    encoder = MobileNetEncoder(data, threads=2, pooling=pooling)
    (ws.home / ENCODER_DIR).mkdir(exist_ok=True)
    shutil.copyfile(encoder.model_path, ws.home / ENCODER_DIR / MODEL_FILE)  # the service reads it from here
    atomic_write_json(ws.home / ENCODER_DIR / ENCODER_FILE, {"pooling": pooling, "version": encoder.version})
    times = np.full(len(products), CATALOG_S, np.int64)
    views = {"served": (VIEW, "product_images.parquet", encoder)}
    if pooling != "avg" and not small:
        views["avgpool"] = (f"{VIEW}_avgpool", "product_images_avgpool.parquet", MobileNetEncoder(data, threads=2))
    built = {}
    for role, (name, file, enc) in views.items():
        built[role], reused = embedding_view(ws.home / "features" / file, name, PRODUCT, "mobilenet", enc,
                                             products.ids, times, _Images(products), progress=progress)
        say(f"image embeddings: {enc.version}, {len(products):,} x {enc.dim} ({'reused' if reused else 'computed'})")
    view = built["served"]
    store = ws.feature_store(list(built.values()))
    raw = vectors_at(store, view, products.ids, times + 1)
    fit_rows = np.setdiff1d(split.gallery, split.valid)

    def valid_p1(projection: Projection) -> float:
        return float(evaluate(projection, raw, products, split.valid, fit_rows)["article_type"]["precision@1"])

    settings = TrainSettings(epochs=8, patience=3, members=2) if small else TrainSettings()
    alone, learned, training = _fit(raw, products, fit_rows, valid_p1, settings, say)
    results: dict[str, Any] = {"dataset": DATASET, "products": len(products), "queries": len(split.queries),
                               "gallery": len(split.gallery), "encoder": encoder.version, "pooling": pooling,
                               "dim": encoder.dim, "training": training, "models": {}}
    if "avgpool" in built:  # the model's own 1024-d output, no projection: the raw baseline
        avgpool = vectors_at(store, built["avgpool"], products.ids, times + 1)
        report = evaluate(Projection(), avgpool, products, split.queries, split.gallery)
        results["models"]["raw_avgpool"] = _public(report) | {
            "valid_precision@1": float(evaluate(Projection(), avgpool, products, split.valid, fit_rows)[
                "article_type"]["precision@1"])}
    per_query = {}
    for family, projection in (("raw", Projection()), ("projection_only", alone), ("projected", learned)):
        report = evaluate(projection, raw, products, split.queries, split.gallery)
        per_query[family] = report["article_type"]["per_query"]["precision@1"]
        results["models"][family] = _public(report) | {
            "valid_precision@1": valid_p1(projection)}
    results["seeds"] = _seed_spread(raw, products, split, fit_rows, valid_p1, settings,
                                    results["models"]["projected"]["article_type"]["precision@1"],
                                    SMALL_SEEDS if small else SEEDS, say)
    gain = per_query["projected"] - per_query["raw"]
    from mlsd.evaluation.significance import paired_bootstrap_mean

    mean, ci = paired_bootstrap_mean(gain)
    results["projected_minus_raw_precision@1"] = {"mean": mean, "ci95": list(ci)}
    headline = results["models"]["projected"]["article_type"]
    results.update({"precision@1": headline["precision@1"], "precision@10": headline["precision@10"],
                    "map@10": headline["map@10"], "recall@10": headline["recall@10"],
                    "raw_precision@1": results["models"]["raw"]["article_type"]["precision@1"]})
    if "raw_avgpool" in results["models"]:
        results["raw_avgpool_precision@1"] = results["models"]["raw_avgpool"]["article_type"]["precision@1"]
    results["served"] = register(ws, products, split, raw, {"raw": Projection(), "projected": learned},
                                 encoder.version, view.lineage_version, results)
    results["replay_requests"] = write_traffic(ws, products, split.queries)
    written = store.materialize([VIEW], end_us=(CATALOG_S + 1) * US_PER_S)  # only the served vectors
    store.online.close()
    say(f"materialized {written.get(VIEW, 0):,} product image vectors to the online store")
    results["seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_json(ws.run_file, results)
    return results


def _fit(raw: np.ndarray, products: Products, fit_rows: np.ndarray, valid_p1: Callable[[Projection], float],
         settings: TrainSettings, say: Progress) -> tuple[Projection, Projection, dict[str, Any]]:
    """The ensemble alone, the served vector (raw features weighted by alpha, chosen on validation), the log."""
    alone, training = train_ensemble(raw[fit_rows], products.article_type[fit_rows], valid_p1, settings, say)
    alpha = max(ALPHAS, key=lambda a: valid_p1(alone.with_alpha(a)))  # the first best: ties keep less raw
    learned = alone.with_alpha(alpha)
    training["alpha"] = {"chosen": alpha, "grid": list(ALPHAS), "valid_precision@1": valid_p1(learned)}
    say(f"  raw-feature weight alpha={alpha} (validation precision@1 {training['alpha']['valid_precision@1']:.4f})")
    return alone, learned, training


def _seed_spread(raw: np.ndarray, products: Products, split: QuerySplit, fit_rows: np.ndarray,
                 valid_p1: Callable[[Projection], float], settings: TrainSettings, served_p1: float, seeds: int,
                 say: Progress) -> dict[str, Any]:
    """Test precision@1 of the whole training procedure (ensemble, alpha) over ``seeds`` training seeds.

    Seed ``settings.seed`` is the served model (``served_p1``, already measured); the others are trained
    the same way only to show how much of a difference between models is the projection's own noise.
    """
    scores = [served_p1]
    for seed in range(settings.seed + 1, settings.seed + seeds):
        _, learned, _ = _fit(raw, products, fit_rows, valid_p1, replace(settings, seed=seed), lambda _: None)
        report = evaluate(learned, raw, products, split.queries, split.gallery)
        scores.append(float(report["article_type"]["precision@1"]))
    mean, sd = mean_sd(scores)
    say(f"  over {seeds} training seeds: test precision@1 {mean:.4f} ± {sd:.4f}")
    return {"precision@1_mean": mean, "precision@1_sd": sd, "n": seeds,
            "precision@1": scores, "seeds": list(range(settings.seed, settings.seed + seeds))}


class _Images(Sequence[bytes]):
    """The products' image files as a lazy sequence of bytes (read when the encoder asks)."""

    def __init__(self, products: Products) -> None:
        self.products = products

    def __len__(self) -> int:
        return len(self.products)

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, slice):
            return [self.products.image_bytes(i) for i in range(len(self))[item]]
        return self.products.image_bytes(int(item))


def register(ws: Workspace, products: Products, split: QuerySplit, raw: np.ndarray,
             projections: dict[str, Projection], encoder_version: str, view_version: str,
             results: dict[str, Any]) -> dict[str, Any]:
    """Each family with the whole gallery's index inside; promoted on validation precision@1 per query."""
    lineage = Lineage(f"{DATASET}:{len(products)}", {VIEW: view_version}, code_revision())
    g = split.gallery
    fit_rows = np.setdiff1d(g, split.valid)
    scores, names = {}, {}
    for family, projection in projections.items():
        model = VisualSearchModel.build(family, encoder_version, projection, raw[g], products.ids[g],
                                        products.article_type[g].tolist(), products.colour[g].tolist(),
                                        [products.names[i] for i in g], {"k": K})
        similarities, _ = model.search(raw[split.valid], K)
        profile_path = ws.home / "profiles" / family / PROFILE_FILE
        profile_path.parent.mkdir(parents=True, exist_ok=True)
        profile = DatasetProfile.build({"similarity": similarities.ravel(), "top_similarity": similarities[:, 0]})
        profile.columns[PREDICTION] = NumericProfile.build(similarities.ravel())
        atomic_write_json(profile_path, profile.to_dict())
        test = results["models"][family]["article_type"]
        version = ws.registry.register(
            MODEL_NAME, model, params={"family": family, "encoder": encoder_version, "gallery": len(g)},
            metrics={"test_precision_at_1": test["precision@1"], "test_map_at_10": test["map@10"]},
            lineage=lineage, experiment="visual", run_name=family, artifacts=[profile_path])
        ids = search_labels(projection(raw[split.valid]), projection(raw[fit_rows]), 1)
        scores[version.version] = (products.article_type[fit_rows][ids[:, 0]] ==
                                   products.article_type[split.valid]).astype(np.float64)
        names[version.version] = family
    promotion = promote(ws.registry, MODEL_NAME, scores)
    return {"champion": promotion.champion, "champion_family": names[promotion.chosen],
            "challenger": promotion.challenger, "versions": names, "promoted_on": "validation precision@1 per query",
            "promotion": promotion.describe()}
