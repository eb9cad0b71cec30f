"""The MLflow ``python_function`` flavour of a registered version, so MLflow's own API loads and scores it.

Every version's ``model`` directory carries an ``MLmodel`` file naming this module as its
``loader_module``; ``mlflow.pyfunc.load_model("models:/ads-talkingdata@champion")`` then downloads the
same safe files mlsd serves from (JSON, LightGBM text, weights-only state dicts; never pickle) and
:func:`_load_pyfunc` reads them with the class's own ``load``. ``predict(frame)`` hands the frame's
columns to the model's ``predict(columns)`` (a click pipeline's calibrated click probability, a
ranker's score per row); the columns a model reads are listed in the ``MLmodel`` metadata
(``mlsd_inputs``). A model kind without ``predict(columns)`` (a session recommender, a retrieval
pipeline) loads, and its ``predict`` says it scores through its service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlsd.registry.mlflow_registry import load_model

LOADER_MODULE = "mlsd.registry.pyfunc"


def input_columns(model: Any) -> list[str]:
    """The columns ``predict`` reads, where the model says (an encoder's columns, a ranker's features)."""
    encoder = getattr(model, "encoder", None)
    if encoder is not None and hasattr(encoder, "columns"):
        return list(encoder.columns)
    features = getattr(model, "features", None)
    return [str(f) for f in features] if isinstance(features, list | tuple) else []


def write_mlmodel(directory: Path, model: Any, run_id: str) -> None:
    """Write ``directory/MLmodel`` (the pyfunc flavour) for a model saved in ``directory``."""
    import mlflow.pyfunc
    from mlflow.models import Model

    meta = Model(artifact_path="model", run_id=run_id,
                 metadata={"mlsd_kind": f"{type(model).__module__}:{type(model).__qualname__}",
                           "mlsd_inputs": input_columns(model)})
    mlflow.pyfunc.add_to_model(meta, loader_module=LOADER_MODULE, data=".")
    meta.save(str(directory / "MLmodel"))


class PyfuncScorer:
    """What ``mlflow.pyfunc.load_model`` wraps: ``predict(frame)`` over the model's ``predict(columns)``."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> np.ndarray:
        predict = getattr(self.model, "predict", None)
        if not callable(predict):
            raise TypeError(f"{type(self.model).__name__} does not score a frame of features; it is served by its "
                            "system's service (mlsd serve)")
        if hasattr(model_input, "columns"):
            columns = {str(c): model_input[c].to_numpy() for c in model_input.columns}
        else:
            columns = {str(k): np.asarray(v) for k, v in dict(model_input).items()}
        missing = [c for c in input_columns(self.model) if c not in columns]
        if missing:
            raise ValueError(f"missing input column(s): {', '.join(missing)}")
        return np.asarray(predict(columns), dtype=np.float64)


def _load_pyfunc(data_path: str) -> PyfuncScorer:
    """MLflow's entry point: the saved model in ``data_path`` (the version's ``model`` directory)."""
    return PyfuncScorer(load_model(Path(data_path)))
