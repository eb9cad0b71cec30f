"""``mlsd run search``: judgments -> feature store -> five folds of LambdaMART and a pointwise peer -> registry.

Every fold's models are chosen on its validation part only; the table is the test parts' means on
both published scales. Fold 1's two models are registered (lineage, a monitoring profile of its
validation part); promotion picks the champion on validation per-query nDCG@10, the other becomes
the challenger; the online store is filled so ``mlsd serve search`` ranks right away, and fold 1's
test part (S5) is the traffic ``mlsd replay search`` sends.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa

from mlsd.core.atomic import atomic_write_json
from mlsd.core.progress import progress as bar
from mlsd.core.timeutil import US_PER_S
from mlsd.evaluation.significance import paired_bootstrap_mean
from mlsd.events import EventLog, Ingestor
from mlsd.monitoring.online import PREDICTION
from mlsd.monitoring.profile import DatasetProfile, NumericProfile
from mlsd.registry import Lineage, code_revision
from mlsd.registry.promotion import promote
from mlsd.system import Workspace
from mlsd.systems.search.data import COLLECTED_S, FOLDS, JUDGMENT_SCHEMA, Fold, load_judgments
from mlsd.systems.search.features import VIEWS, frame_inputs, search_views
from mlsd.systems.search.train import (
    Progress,
    SearchSettings,
    Split,
    evaluate,
    evaluate_queries,
    per_query_ndcg,
    select,
)
from mlsd.training.models.lambdamart import RankerBag

MODEL_NAME = "search-mq2008"
FAMILIES = ("lambdamart", "pointwise")
HEADLINE = ("ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "ndcg@10_letor", "map_letor", "mrr")
AS_OF_S = COLLECTED_S + 3600  # labels are read an hour after the collection: every judgment is in
PROFILE_FILE = "profile.json"
MONITORED = ("f1", "f5", "f11", "f15", "f21", "f25", "f39", "f40", "documents")


def judgment_frame(ws: Workspace, data: str | None, say: Progress) -> tuple[pa.Table, EventLog]:
    """Ingest the judgments and read them back through the feature store (point in time), in file order."""
    log = EventLog(ws.events("judgments"), JUDGMENT_SCHEMA)
    events = load_judgments(data)
    report = Ingestor(log).ingest_table(events, "letor-mq2008")
    say(f"ingested {report.accepted:,} judgments ({report.duplicates:,} already in the log, "
        f"{report.rejected} rejected)")
    labels = pa.table({"row": np.arange(len(events)), "query_id": events["query_id"], "doc_id": events["doc_id"],
                       "part": events["part"], "label": events["label"],
                       "event_timestamp": pa.array(np.full(len(events), AS_OF_S * US_PER_S), pa.int64()).cast(
                           pa.timestamp("us", tz="UTC"))})
    store = ws.feature_store(search_views(log))
    frame = store.training_frame(labels, list(VIEWS)).read_all().sort_by("row")
    store.online.close()
    return frame, log


def split_of(frame: pa.Table, columns: dict[str, np.ndarray], parts: tuple[int, ...]) -> Split:
    mask = np.isin(frame["part"].to_numpy(), parts)
    queries = frame["query_id"].to_numpy()[mask]
    change = np.flatnonzero(np.diff(queries)) + 1
    groups = np.diff(np.concatenate([[0], change, [len(queries)]]))
    return Split({k: v[mask] for k, v in columns.items()}, frame["label"].to_numpy()[mask].astype(np.float64),
                 groups, queries[np.concatenate([[0], change])] if len(queries) else queries)


def run_fold(frame: pa.Table, columns: dict[str, np.ndarray], fold: Fold, settings: SearchSettings, say: Progress
             ) -> tuple[dict[str, Any], dict[str, RankerBag], tuple[Split, Split, Split], dict[str, dict[str, Any]]]:
    """One fold: each family selected on validation, scored on test; also the test metrics per query."""
    train_parts, valid_part, test_part = fold.parts
    train, valid, test = (split_of(frame, columns, train_parts), split_of(frame, columns, (valid_part,)),
                          split_of(frame, columns, (test_part,)))
    say(f"  fold {fold.number}: train S{'+S'.join(map(str, train_parts))} ({len(train.groups)} queries), "
        f"validate S{valid_part}, test S{test_part}")
    record: dict[str, Any] = {"fold": fold.number}
    models, queries = {}, {}
    for family in FAMILIES:
        model, selection = select(train, valid, family, settings, say)
        queries[family] = evaluate_queries(model, test)
        record[family] = {"test": {k: float(v.mean()) for k, v in queries[family].items()}, "selection": selection}
        models[family] = model
    record.update({k: record["lambdamart"]["test"][k] for k in HEADLINE})
    return record, models, (train, valid, test), queries


def build_search(ws: Workspace, data: str | None, *, small: bool = False, progress: bool = True) -> dict[str, Any]:
    say: Progress = print if progress else (lambda _: None)
    started = time.perf_counter()
    ws.home.mkdir(parents=True, exist_ok=True)
    frame, log = judgment_frame(ws, data, say)
    columns = frame_inputs({name: frame[name].to_numpy(zero_copy_only=False) for name in frame.column_names})
    settings = SearchSettings(seeds=2, grid=SearchSettings().grid[:1]) if small else SearchSettings()
    folds, served = [], None
    queries: dict[str, dict[str, list[np.ndarray]]] = {f: {k: [] for k in HEADLINE} for f in FAMILIES}
    for fold in bar(FOLDS[:1] if small else FOLDS, desc="LETOR folds", unit="fold"):
        record, models, splits, per_query = run_fold(frame, columns, fold, settings, say)
        folds.append(record)
        for family in FAMILIES:
            for k in HEADLINE:
                queries[family][k].append(per_query[family][k])
        if fold.number == 1:
            served = (models, splits)
    assert served is not None
    results: dict[str, Any] = {"dataset": "letor-mq2008", "folds": folds, "settings": settings.__dict__,
                               "mean": _mean(folds, "lambdamart"), "pointwise_mean": _mean(folds, "pointwise"),
                               **intervals({f: {k: np.concatenate(v) for k, v in m.items()}
                                            for f, m in queries.items()})}
    results["served"] = register(ws, log, *served)
    store = ws.feature_store(search_views(log))
    store.materialize(end_us=AS_OF_S * US_PER_S)
    store.online.close()
    log.close()
    results["seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_json(ws.run_file, results)
    return results


def intervals(queries: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
    """95% bootstrap intervals over test queries (every fold's test part: each query once) of each family's
    mean, and of LambdaMART's paired gain over the pointwise peer."""
    ci = {f: {k: list(paired_bootstrap_mean(v)[1]) for k, v in m.items()} for f, m in queries.items()}
    gain = {}
    for k in ("ndcg@10", "ndcg@10_letor", "map_letor"):
        mean, (low, high) = paired_bootstrap_mean(queries["lambdamart"][k] - queries["pointwise"][k])
        gain[k] = {"mean": mean, "ci95": [low, high]}
    return {"test_queries": len(queries["lambdamart"]["ndcg@10"]), "ci95": ci["lambdamart"],
            "pointwise_ci95": ci["pointwise"], "lambdamart_minus_pointwise": gain}


def _mean(folds: list[dict[str, Any]], family: str) -> dict[str, float]:
    return {k: float(np.mean([f[family]["test"][k] for f in folds])) for k in HEADLINE}


def register(ws: Workspace, log: EventLog, models: dict[str, RankerBag], splits: tuple[Split, Split, Split]
             ) -> dict[str, Any]:
    """Register fold 1's models with lineage and a monitoring profile; promote on validation."""
    _, valid, test = splits
    lineage = Lineage(f"letor-mq2008:{len(log)}", {v: 1 for v in VIEWS}, code_revision())
    reference = {c: valid.columns[c] for c in MONITORED}
    versions: dict[str, np.ndarray] = {}
    names = {}
    for family, model in models.items():
        profile = ws.home / "profiles" / family / PROFILE_FILE
        profile.parent.mkdir(parents=True, exist_ok=True)
        built = DatasetProfile.build(reference)
        built.columns[PREDICTION] = NumericProfile.build(model.predict(valid.columns))
        atomic_write_json(profile, built.to_dict())
        metrics = {f"test_{k.replace('@', '_at_')}": v for k, v in evaluate(model, test).items()}
        version = ws.registry.register(MODEL_NAME, model, params={"family": family, **model.params},
                                       metrics=metrics, lineage=lineage, experiment="search", run_name=family,
                                       artifacts=[profile])
        versions[version.version] = per_query_ndcg(model, valid)
        names[version.version] = family
    promotion = promote(ws.registry, MODEL_NAME, versions)
    return {"champion": promotion.champion, "champion_family": names[promotion.chosen],
            "challenger": promotion.challenger, "test_queries": test.query_ids.tolist(),
            "versions": names}
