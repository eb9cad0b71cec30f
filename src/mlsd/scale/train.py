"""Data-parallel training on Ray Train: the click models' own training loop, one process per worker.

:class:`RayTrainEngine` fits a PyTorch click model (DCN-v2, FFM, logistic) with ``TorchTrainer``:
the training rows become a Ray Dataset and each worker reads its own shard (Ray Data's streaming
split, equal row counts) once into memory and shuffles it every epoch (``cache=False`` streams the
shard every epoch through a local shuffle buffer instead: for shards beyond a worker's memory, and
slower — each epoch starts a Ray Data execution). The network is wrapped
in DistributedDataParallel over gloo (CPU) so gradients, sparse embedding gradients included, are
all-reduced, and the loop is :meth:`TorchClickModel.train_epochs` itself — the same optimizers,
early stopping on the same validation rows (every worker scores them: the weights are the same on
every worker, so every worker stops at the same epoch). Each worker takes ``batch_size / workers``
rows per step, so a step sees the embedded path's batch size and the learning rate keeps its meaning.

The fitted weights come back through a Ray Train checkpoint into the caller's model object, so
calibration, registration and lineage are the embedded path's; :attr:`name` and :attr:`workers`
go into the run's parameters.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mlsd.core.errors import MlsdError
from mlsd.scale.cluster import ensure_ray
from mlsd.training.encoding import EncodedBatch
from mlsd.training.models.base import ClickModel, FitReport
from mlsd.training.models.neural import TorchClickModel

STATE_FILE, REPORT_FILE = "state_dict.pt", "fit_report.json"


def _arrow(batch: EncodedBatch) -> pa.Table:
    """Encoded rows as a table of tensor columns (Ray Data's own tensor type)."""
    from ray.data.extensions import ArrowTensorArray

    if batch.labels is None:
        raise ValueError("training batch has no labels")
    return pa.table({"dense": ArrowTensorArray.from_numpy(np.ascontiguousarray(batch.dense, np.float32)),
                     "ids": ArrowTensorArray.from_numpy(np.ascontiguousarray(batch.categorical, np.int64)),
                     "label": pa.array(batch.labels.astype(np.float32))})


def _worker_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: DDP-wrap the network, train on this worker's shard, rank 0 checkpoints."""
    import ray.train
    import ray.train.torch
    import torch
    import torch._dynamo  # Adam imports it on first use (~5 s): here, outside the timed loop

    model: TorchClickModel = config["model"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    wrapped = ray.train.torch.prepare_model(model.network, move_to_device=False)
    shard = ray.train.get_dataset_shard("train")
    per_worker = max(1, model.batch_size // world)
    if config["cache"]:  # read the shard once, then shuffle it in memory every epoch
        parts = list(shard.iter_batches(batch_size=65_536, batch_format="numpy"))
        dense, ids, labels = (torch.from_numpy(np.concatenate([p[c] for p in parts]))
                              for c in ("dense", "ids", "label"))
        rng = np.random.default_rng(model.seed * 10_007 + rank)

        def batches(epoch: int) -> Any:
            order = torch.from_numpy(rng.permutation(len(labels)))
            for start in range(0, len(labels), per_worker):
                index = order[start:start + per_worker]
                yield dense[index], ids[index], labels[index]
    else:  # stream the shard every epoch through a local shuffle buffer
        def batches(epoch: int) -> Any:
            for batch in shard.iter_torch_batches(batch_size=per_worker, local_shuffle_buffer_size=config["shuffle"],
                                                  local_shuffle_seed=model.seed * 10_007 + epoch * world + rank):
                yield batch["dense"], batch["ids"], batch["label"]

    report = model.train_epochs(batches, config["valid"], rows=config["rows"], forward=wrapped)
    with tempfile.TemporaryDirectory() as directory:
        checkpoint = None
        if rank == 0:
            torch.save(model.network.state_dict(), Path(directory) / STATE_FILE)
            (Path(directory) / REPORT_FILE).write_text(json.dumps(asdict(report)))
            checkpoint = ray.train.Checkpoint.from_directory(directory)
        ray.train.report({"best_valid_logloss": report.best_valid_logloss, "epochs": report.iterations},
                         checkpoint=checkpoint)


class RayTrainEngine:
    """Fits click models data-parallel on ``workers`` Ray Train workers (module docstring).

    The cluster is :func:`~mlsd.scale.cluster.ensure_ray`'s; checkpoints go to ``storage`` (a
    directory every node sees; a temporary one by default) and are removed once loaded.
    """

    name = "ray"

    def __init__(self, workers: int = 2, *, cache: bool = True, shuffle_buffer: int = 65_536,
                 storage: str | None = None) -> None:
        if workers < 1:
            raise MlsdError(f"workers must be at least 1, got {workers}")
        self.workers, self.cache, self.shuffle_buffer, self.storage = workers, cache, shuffle_buffer, storage

    def fit(self, model: ClickModel, train: EncodedBatch, valid: EncodedBatch) -> FitReport:
        """Train ``model`` in place (its best epoch's weights) and return the fit's report."""
        if not isinstance(model, TorchClickModel):
            raise MlsdError(f"the Ray engine trains the PyTorch models; {model.kind!r} trains embedded "
                            "(drop --engine ray or pick dcn_v2, ffm, logreg)")
        ray = ensure_ray()
        import torch
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer

        with tempfile.TemporaryDirectory(prefix="mlsd-ray-train-", dir=self.storage) as storage:
            trainer = TorchTrainer(
                _worker_loop,
                train_loop_config={"model": model, "valid": valid, "rows": len(train), "cache": self.cache,
                                   "shuffle": self.shuffle_buffer},
                scaling_config=ScalingConfig(num_workers=self.workers, use_gpu=False, resources_per_worker={"CPU": 1}),
                torch_config=TorchConfig(backend="gloo"),
                run_config=RunConfig(name=f"{model.kind}-{self.workers}w", storage_path=storage),
                datasets={"train": ray.data.from_arrow(_arrow(train))},
            )
            result = trainer.fit()
            if result.checkpoint is None:
                raise MlsdError(f"Ray Train finished without a checkpoint ({result.error or 'no error reported'})")
            with result.checkpoint.as_directory() as directory:
                state = torch.load(Path(directory) / STATE_FILE, weights_only=True, map_location="cpu")
                report = FitReport(**json.loads((Path(directory) / REPORT_FILE).read_text()))
        model.network.load_state_dict(state)
        model.network.eval()
        return report
