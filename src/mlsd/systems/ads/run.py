"""``mlsd run ads``: ingest -> features -> train every model -> register -> evaluate, on every dataset.

TalkingData (the served system) goes through the whole platform and its models are registered in
MLflow with lineage; the best on the validation period becomes ``champion``, the runner-up
``challenger``, and the online store is filled so ``mlsd serve ads`` can score right away. Criteo and
iPinYou check the same models on hashed categorical data. Without a data directory the generated
ad marketplace's impression log (in TalkingData's schema) goes through the same path. Every version
carries a monitoring profile; ``run.json`` records which dataset is served and the results.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from mlsd.core.atomic import atomic_write_json
from mlsd.core.errors import DataNotFoundError
from mlsd.datasets import TALKINGDATA_SCHEMA, locate
from mlsd.datasets.ctr import load_criteo, load_ipinyou
from mlsd.datasets.marketplace import AdMarketplace, click_log
from mlsd.evaluation.classification import reliability_curve, roc_auc, roc_points
from mlsd.evaluation.significance import bootstrap_metric
from mlsd.events import EventLog, Ingestor
from mlsd.features import FeatureStore, open_online_store
from mlsd.monitoring.calibrate import calibrate
from mlsd.monitoring.online import PREDICTION
from mlsd.monitoring.profile import DatasetProfile, NumericProfile
from mlsd.registry import Lineage, ModelRegistry, code_revision
from mlsd.registry.promotion import promote
from mlsd.scale.engines import fit_engine, offline_store
from mlsd.systems.ads.features import ads_views, click_views
from mlsd.systems.ads.system import MONITOR_WINDOW_S
from mlsd.systems.ads.training import MODELS, TrainingSet, flat_set, talkingdata_set, train_all
from mlsd.training import TrainingResult

RUN_FILE = "run.json"
PROFILE_FILE = "profile.json"
REPORTED = ("auc", "logloss", "ne", "calibration", "ece", "pr_auc")


def served_dataset(home: Path) -> str:
    """The dataset whose models ``mlsd run`` left to serve in ``home`` (TalkingData before any run)."""
    run = home / RUN_FILE
    return str(json.loads(run.read_text())["dataset"]) if run.exists() else "talkingdata"


def model_name(dataset: str) -> str:
    """The registered model name of a dataset's ads models."""
    return f"ads-{dataset}"


@dataclass
class AdsRun:
    """One ``mlsd run ads``; ``run`` returns ``{dataset: {model: metrics}}`` on each test period."""

    home: Path
    data: str | None = None
    models: Sequence[str] = MODELS
    progress: bool = True
    marketplace_rows: int = 400_000
    clicks: pa.Table | None = None  # TalkingData-shaped clicks to use instead of the data directory's file
    flat_datasets: bool = True
    dataset: str | None = None  # the served dataset's name when ``clicks`` is given
    seed: int = 0
    engine: str = "embedded"  # "ray": the training frame and the PyTorch fits on Ray (mlsd.scale.engines)
    train_workers: int = 2
    results: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    sizes: dict[str, dict[str, int]] = field(default_factory=dict)
    views: dict[str, list[str]] = field(default_factory=dict)
    promotions: dict[str, str] = field(default_factory=dict)

    def say(self, text: str) -> None:
        tqdm.write(text)

    def run(self) -> dict[str, dict[str, dict[str, Any]]]:
        self.home.mkdir(parents=True, exist_ok=True)
        registry = ModelRegistry(self.home)
        clicks, served = self.clicks, self.dataset or "talkingdata"
        if clicks is None:
            try:
                locate("talkingdata", self.data)
            except DataNotFoundError as exc:
                self.say(f"talkingdata: skipped ({exc}); using the generated ad marketplace instead")
                clicks, served = click_log(AdMarketplace(self.seed), self.marketplace_rows, days=7.0), "marketplace"
        self._click_system(registry, served, clicks)
        for loader in (load_criteo, load_ipinyou) if self.flat_datasets else ():
            try:
                data = flat_set(loader(self.data))
            except DataNotFoundError as exc:
                self.say(f"{loader.__name__[5:]}: skipped ({exc})")
                continue
            self._train_and_register(registry, data)
        atomic_write_json(self.home / RUN_FILE, {"dataset": served, "results": self.results,
                                                 "sizes": self.sizes, "views": self.views,
                                                 "promotions": self.promotions})
        return self.results

    def _click_system(self, registry: ModelRegistry, name: str, clicks: pa.Table | None) -> None:
        """The served system: a click log through ingestion, the feature store, training and the registry."""
        started = time.perf_counter()
        with EventLog(self.home / "events" / "clicks", TALKINGDATA_SCHEMA) as log:
            if clicks is not None:
                report = Ingestor(log).ingest_table(clicks, name)
            else:
                path = locate("talkingdata", self.data)["train_sample.csv"]
                report = Ingestor(log).ingest_file(path, progress=self.progress)
            self.say(f"{name}: ingested {report.accepted:,} new clicks ({report.duplicates:,} already in the "
                     f"log, {report.rejected} rejected) in {time.perf_counter() - started:.1f} s")
            store = FeatureStore(open_online_store(self.home / "online.db"), offline_store(self.engine),
                                 ads_views(log))
            started = time.perf_counter()
            data = talkingdata_set(store, log, name=name)
            self.say(f"{name}: point-in-time training frame, {len(data.labels):,} rows x "
                     f"{len(data.numeric)} numeric + {len(data.categorical)} categorical features in "
                     f"{time.perf_counter() - started:.1f} s")
            self.sizes[name] = {"events": len(log), "train": len(data.split.train), "valid": len(data.split.valid),
                                "test": len(data.split.test), "positives": int(data.labels.sum())}
            self.views = {v.name: list(v.feature_names) for v in store.views.values()}
            self._train_and_register(registry, data)
            end = pc.max(pc.cast(log.read(["click_time"]).column("click_time"), pa.int64())).as_py()
            written = store.materialize([v.name for v in click_views(log)], end_us=end)
            self.say(f"{name}: online store filled as of the last click ({sum(written.values()):,} entity rows)")
            store.online.close()

    def _train_and_register(self, registry: ModelRegistry, data: TrainingSet) -> None:
        lineage = Lineage(data.fingerprint(), data.feature_views or {}, code_revision())
        name = model_name(data.name)
        versions: list[tuple[float, str]] = []
        refused: dict[str, str] = {}
        kinds: dict[str, str] = {}
        scores: dict[str, dict[str, Any]] = {}
        # The monitoring reference is the validation period: the most recent data the model has not
        # been fitted to, and (unlike the first training days) with the history behind it that live
        # traffic has; "time since last" and running counts drift from a log's first days by design.
        recent = data.split.valid if len(data.split.valid) else data.split.train
        recent_columns = {c: np.asarray(data.columns[c])[recent] for c in (*data.numeric, *data.categorical)}
        features = DatasetProfile.build({c: recent_columns[c] for c in data.numeric},
                                        {c: recent_columns[c] for c in data.categorical})
        # Alert lines per column from the same period cut into the monitor's windows: count features
        # follow the day's traffic curve, and one fixed line would alert on every clean night.
        times = data.times_s[recent] if data.times_s is not None else None
        if times is not None:
            features = calibrate(features, recent_columns, times, MONITOR_WINDOW_S)

        def record(kind: str, result: TrainingResult) -> None:
            test = result.metrics.get("test", {})
            scores[kind] = {k: round(float(test[k]), 6) for k in REPORTED if k in test}
            metrics = {f"{period}_{k}": v for period, values in result.metrics.items() for k, v in values.items()}
            intervals = self._auc_intervals(data, result)
            for key, (low, high) in intervals.items():
                metrics[f"{key}_ci_low"], metrics[f"{key}_ci_high"] = low, high
            if "test_auc" in intervals:
                scores[kind]["auc_ci95"] = [round(v, 4) for v in intervals["test_auc"]]
            if data.best_logloss is not None:
                metrics["test_best_possible_logloss"] = data.best_logloss
                scores[kind]["best_possible_logloss"] = round(data.best_logloss, 6)
            artefact = self.home / "reliability" / f"{data.name}-{kind}.json"
            self._reliability(data, result, artefact)
            # Predictions of the same period: calibrated and out of sample, like the service's scores.
            profile = self.home / "profiles" / f"{data.name}-{kind}" / PROFILE_FILE
            profile.parent.mkdir(parents=True, exist_ok=True)
            valid_predictions = result.predictions.get("valid", np.zeros(0))
            reference = features.with_columns({PREDICTION: NumericProfile.build(valid_predictions)})
            if times is not None and len(valid_predictions) == len(times):
                reference = calibrate(reference, {PREDICTION: valid_predictions}, times, MONITOR_WINDOW_S)
            atomic_write_json(profile, reference.to_dict())
            version = registry.register(name, result.pipeline, params=result.params, metrics=metrics,
                                        lineage=lineage, experiment=f"ads-{data.name}", run_name=kind,
                                        artifacts=[artefact, profile])
            low_test, high_test = scores[kind].get("auc_ci95", (float("nan"), float("nan")))
            self.say(f"{data.name}: {kind:7s} test AUC {scores[kind].get('auc', float('nan')):.4f} "
                     f"[{low_test:.4f}, {high_test:.4f}]  NE {scores[kind].get('ne', float('nan')):.3f}  calibration "
                     f"{scores[kind].get('calibration', float('nan')):.3f}  ({result.fit.seconds:.1f} s) "
                     f"-> {name} v{version.version}")
            valid = result.metrics.get("valid", {})
            versions.append((valid.get("logloss", float("inf")), version.version))
            kinds[version.version] = kind
            # The guard: a model not significantly better than chance (the 95% bootstrap interval of
            # its validation AUC reaching 0.5) or than the base rate (NE 1) learned nothing to trust.
            low = intervals.get("valid_auc", (float("nan"),))[0]
            ne = valid.get("ne", float("nan"))
            if not low > 0.5 or not ne < 1.0:
                refused[version.version] = (f"{kind}: validation AUC {valid.get('auc', float('nan')):.4f} (95% "
                                            f"interval from {low:.4f}), NE {ne:.3f}: not better than chance "
                                            "(AUC 0.5) and the base rate (NE 1)")

        train_all(data, self.models, on_model=record,
                  engine=lambda kind: fit_engine(self.engine, kind, self.train_workers))
        promotion = promote(registry, name, {version: loss for loss, version in versions}, higher_is_better=False,
                            refused=refused)
        self.say(f"{data.name}: {promotion.describe()}")
        chosen = scores.get(kinds.get(promotion.champion or "", ""), {})
        if chosen and not chosen.get("auc_ci95", (1.0,))[0] > 0.5:
            # Reported, not acted on: promotion decides on validation only; this says the two disagree.
            self.say(f"{data.name}: warning: the champion's test AUC {chosen['auc']:.4f} "
                     f"[{chosen['auc_ci95'][0]:.4f}, {chosen['auc_ci95'][1]:.4f}] is not above chance although "
                     "validation chose it: the test period behaves unlike validation; do not trust it to serve")
        self.promotions[data.name] = promotion.describe()
        self.results[data.name] = scores

    @staticmethod
    def _auc_intervals(data: TrainingSet, result: TrainingResult) -> dict[str, tuple[float, float]]:
        """95% bootstrap intervals of the validation and test AUC (rows resampled; 200 draws)."""
        found = {}
        for period, index in (("valid", data.split.valid), ("test", data.split.test)):
            y, p = data.labels[index], result.predictions.get(period)
            if p is not None and len(p) and 0 < y.sum() < len(y):
                found[f"{period}_auc"] = bootstrap_metric(roc_auc, np.asarray(y), p)
        return found

    @staticmethod
    def _reliability(data: TrainingSet, result: TrainingResult, path: Path) -> None:
        """The test period's reliability curve and ROC curve (for the report)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        y, p = data.labels[data.split.test], result.predictions["test"]
        curve = reliability_curve(y, p, bins=10, strategy="quantile")
        fpr, tpr = roc_points(y, p)
        atomic_write_json(path, {"predicted": curve.predicted.tolist(), "observed": curve.observed.tolist(),
                                 "rows": curve.counts.tolist(), "roc_fpr": fpr.tolist(), "roc_tpr": tpr.tolist()})


def format_table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The per-dataset, per-model test metrics as a text table (AUC with its 95% bootstrap interval)."""
    lines = [f"{'dataset':12s} {'model':8s} {'AUC':>7s} {'AUC 95% CI':>17s} {'logloss':>8s} {'NE':>6s} "
             f"{'calib':>6s} {'ECE':>8s}"]
    for dataset, models in results.items():
        for kind, m in models.items():
            low, high = m.get("auc_ci95", (float("nan"), float("nan")))
            lines.append(f"{dataset:12s} {kind:8s} {m.get('auc', float('nan')):7.4f} [{low:6.4f}, {high:6.4f}] "
                         f"{m.get('logloss', float('nan')):8.5f} {m.get('ne', float('nan')):6.3f} "
                         f"{m.get('calibration', float('nan')):6.3f} {m.get('ece', float('nan')):8.5f}")
    return "\n".join(lines)
