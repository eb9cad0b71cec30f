"""A trained click model as one unit: encoder -> model -> undo downsampling -> calibrator.

This is what the registry stores and the inference service loads. ``train_click_model`` is the one
training recipe every system uses: time-ordered splits, negatives downsampled in the training period
only, the calibrator fitted on the untouched validation period, the test period scored last.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlsd.evaluation.classification import evaluate
from mlsd.training.calibration import (
    Calibrator,
    calibrator_from_dict,
    downsample_negatives,
    make_calibrator,
    recalibrate,
)
from mlsd.training.encoding import Columns, EncodedBatch, FeatureEncoder, column_array
from mlsd.training.engine import EmbeddedEngine, FitEngine
from mlsd.training.models.base import ClickModel, FitReport, make_model, model_kinds


@dataclass
class ClickPipeline:
    """Encoder, fitted model, negative sampling rate and optional calibrator; predicts true click rates."""

    encoder: FeatureEncoder
    model: ClickModel
    negative_rate: float = 1.0
    calibrator: Calibrator | None = None

    def predict_encoded(self, batch: EncodedBatch) -> np.ndarray:
        p = recalibrate(self.model.predict(batch), self.negative_rate)
        return self.calibrator.transform(p) if self.calibrator is not None else p

    def predict(self, columns: Columns) -> np.ndarray:
        return self.predict_encoded(self.encoder.transform(columns))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save(directory / "model")
        meta = {"kind": self.model.kind, "encoder": self.encoder.to_dict(), "negative_rate": self.negative_rate,
                "calibrator": self.calibrator.to_dict() if self.calibrator is not None else None}
        (directory / "pipeline.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: Path) -> ClickPipeline:
        meta = json.loads((Path(directory) / "pipeline.json").read_text())
        kinds = model_kinds()
        if meta["kind"] not in kinds:
            raise ValueError(f"saved model kind {meta['kind']!r} is not one of {sorted(kinds)}")
        encoder = FeatureEncoder.from_dict(meta["encoder"])
        model = kinds[meta["kind"]].load(Path(directory) / "model", encoder)
        calibrator = calibrator_from_dict(meta["calibrator"]) if meta["calibrator"] else None
        return cls(encoder, model, float(meta["negative_rate"]), calibrator)


@dataclass(frozen=True)
class TimeSplit:
    """Row indices of the train / validation / test periods."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray

    @classmethod
    def by_time(cls, timestamps: np.ndarray, valid_start: Any, test_start: Any) -> TimeSplit:
        """Train before ``valid_start``, validate until ``test_start``, test from then on."""
        t = np.asarray(timestamps)
        return cls(np.flatnonzero(t < valid_start), np.flatnonzero((t >= valid_start) & (t < test_start)),
                   np.flatnonzero(t >= test_start))


@dataclass
class TrainingResult:
    """A fitted pipeline with its fit report, metrics per period and the parameters used."""

    pipeline: ClickPipeline
    fit: FitReport
    metrics: dict[str, dict[str, float]]
    params: dict[str, Any] = field(default_factory=dict)
    predictions: dict[str, np.ndarray] = field(default_factory=dict)  # calibrated, per period


def train_click_model(kind: str, columns: Columns, labels: np.ndarray, split: TimeSplit, encoder: FeatureEncoder, *,
                      negative_rate: float = 1.0, calibration: str = "isotonic", seed: int = 0,
                      model_params: Mapping[str, Any] | None = None, refit: bool = False,
                      engine: FitEngine | None = None) -> TrainingResult:
    """Fit one model kind with the standard recipe and score every period.

    ``calibration`` is ``isotonic``, ``platt`` or ``none``; the calibrator is fitted on the validation
    period, which the model saw only for early stopping. With ``refit`` the final model is retrained
    on train + validation for the early-stopped number of iterations (the test period stays untouched).
    ``engine`` runs the fits (embedded by default); the parameters record its name and worker count.
    """
    engine = engine or EmbeddedEngine()
    started = time.perf_counter()
    y = np.asarray(labels, dtype=np.float32)
    encoder.fit({name: column_array(columns, name)[split.train] for name in encoder.numeric})
    everything = encoder.transform(columns, y)
    kept = split.train[downsample_negatives(y[split.train], negative_rate, seed)]
    valid = everything.take(split.valid)
    # Early stopping compares losses in the model's own (downsampled) space, so its validation rows
    # are downsampled the same way; the calibrator below still sees the whole period.
    stopping = everything.take(split.valid[downsample_negatives(y[split.valid], negative_rate, seed + 1)])
    model = make_model(kind, encoder, seed=seed, **(model_params or {}))
    report = engine.fit(model, everything.take(kept), stopping)
    pipeline = ClickPipeline(encoder, model, negative_rate, None)
    if calibration != "none" and len(valid):
        pipeline.calibrator = make_calibrator(calibration).fit(pipeline.predict_encoded(valid), y[split.valid])
    held_out = None
    if refit and len(valid):
        # Validation metrics (promotion and its guard read them) are those of the model that has not
        # seen the validation period, measured before the refit below trains on it.
        if 0 < y[split.valid].sum() < len(split.valid):
            held_out = evaluate(y[split.valid], pipeline.predict_encoded(valid))
        # The validation period is the most recent data: retrain on train + validation for the
        # early-stopped length; the calibrator stays the one fitted out of sample above.
        both = np.concatenate([split.train, split.valid])
        sampled = both[downsample_negatives(y[both], negative_rate, seed)]
        model = make_model(kind, encoder, **model.refit_params(report))
        refit_report = engine.fit(model, everything.take(sampled), everything.take(np.zeros(0, np.int64)))
        report.rows, report.seconds = refit_report.rows, report.seconds + refit_report.seconds
        pipeline.model = model
    metrics, predictions = {}, {}
    for period, index in (("train", split.train), ("valid", split.valid), ("test", split.test)):
        if len(index):
            predictions[period] = pipeline.predict_encoded(everything.take(index))
        if len(index) and 0 < y[index].sum() < len(index):
            metrics[period] = evaluate(y[index], predictions[period])
    if held_out is not None:
        metrics["valid"] = held_out
    params = {"kind": kind, "negative_rate": negative_rate, "calibration": calibration, "seed": seed,
              "train_rows": len(split.train), "train_rows_sampled": len(kept), "valid_rows": len(split.valid),
              "test_rows": len(split.test), "refit": refit,
              "engine": engine.name, "workers": engine.workers, **{f"model.{k}": v for k, v in model.params().items()}}
    report.seconds = time.perf_counter() - started
    params["train_rows_per_s"] = round(report.rows / max(report.seconds, 1e-9))  # the whole recipe's throughput
    return TrainingResult(pipeline, report, metrics, params, predictions)
