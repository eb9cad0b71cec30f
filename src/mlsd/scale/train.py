"""Data-parallel training on Ray Train: the click models', the two-tower model's and LambdaMART's own fits.

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

LightGBM runs through Ray Train's LightGBM integration: each worker boosts on its row shard with
``tree_learner=data`` and the network Ray sets up (histograms are all-reduced every split), every
worker scoring the whole validation set for early stopping. LambdaMART runs the same way, each
worker holding whole query groups (:meth:`RayTrainEngine.fit_ranker`).

The two-tower model (:meth:`RayTrainEngine.fit_two_tower`) runs the embedded loop
(:func:`~mlsd.training.models.two_tower.tower_epochs`) under DDP, each worker's users scored against
the item vectors of every worker's step, so its in-batch negatives are the embedded batch's.

The fitted weights come back through a Ray Train checkpoint into the caller's model object, so
calibration, registration and lineage are the embedded path's; :attr:`name` and :attr:`workers`
go into the run's parameters.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mlsd.core.errors import MlsdError
from mlsd.scale.cluster import ensure_ray
from mlsd.training.encoding import EncodedBatch
from mlsd.training.models.base import ClickModel, FitReport
from mlsd.training.models.gbdt import LightGBMModel, matrix
from mlsd.training.models.lambdamart import LambdaMART, RankingSet
from mlsd.training.models.neural import TorchClickModel
from mlsd.training.models.two_tower import ItemInputs, TowerConfig, TwoTower, UserInputs, item_log_q, tower_epochs

STATE_FILE, REPORT_FILE, BOOSTER_FILE = "state_dict.pt", "fit_report.json", "booster.txt"


def _tensor(values: np.ndarray) -> Any:
    """A matrix as a column of Ray Data's own tensor type."""
    from ray.data.extensions import ArrowTensorArray

    return ArrowTensorArray.from_numpy(np.ascontiguousarray(values))


def _arrow(batch: EncodedBatch) -> pa.Table:
    """Encoded rows as a table of tensor columns."""
    if batch.labels is None:
        raise ValueError("training batch has no labels")
    return pa.table({"dense": _tensor(batch.dense.astype(np.float32)),
                     "ids": _tensor(batch.categorical.astype(np.int64)),
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
        rng = np.random.default_rng(model.seed + 10_007 * rank)  # rank 0 shuffles as the embedded fit does

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
    _finish(rank, asdict(report), lambda directory: torch.save(model.network.state_dict(), directory / STATE_FILE))


def _lightgbm_loop(config: dict[str, Any]) -> None:
    """One Ray Train LightGBM worker: its shard, the cluster's network parameters, rank 0 checkpoints."""
    import ray.train
    from ray.train.lightgbm import get_network_params

    model: LightGBMModel = config["model"]
    rank = ray.train.get_context().get_world_rank()
    parts = list(ray.train.get_dataset_shard("train").iter_batches(batch_size=65_536, batch_format="numpy"))
    x, y = (np.concatenate([p[c] for p in parts]) for c in ("x", "label"))
    # data-parallel trees; each worker scores the whole validation set, so all stop at the same round
    report = model.fit_matrix(x, y, config["valid_x"], config["valid_y"], tree_learner="data",
                              num_threads=1, **get_network_params())
    report.rows = config["rows"]
    booster = model.booster
    if booster is None:
        raise RuntimeError("LightGBM returned no booster")
    _finish(rank, asdict(report), lambda directory: (directory / BOOSTER_FILE).write_text(booster.model_to_string()))


def _finish(rank: int, report: dict[str, Any], save: Callable[[Path], object]) -> None:
    """Every worker reports the end of its fit; rank 0 attaches the checkpoint ``save`` writes (and ``report``)."""
    import ray.train

    with tempfile.TemporaryDirectory() as directory:
        checkpoint = None
        if rank == 0:
            save(Path(directory))
            (Path(directory) / REPORT_FILE).write_text(json.dumps(report))
            checkpoint = ray.train.Checkpoint.from_directory(directory)
        ray.train.report({k: v for k, v in report.items() if isinstance(v, int | float)}, checkpoint=checkpoint)


def _tower_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker of the two-tower fit: DDP over the towers, in-batch negatives gathered from all workers."""
    import ray.train
    import ray.train.torch
    import torch
    import torch._dynamo  # Adam imports it on first use (~5 s): here, outside the timed loop
    import torch.distributed as dist

    tower: TowerConfig = config["tower"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.manual_seed(tower.seed + rank)  # rank 0 starts as the embedded fit does; DDP broadcasts its weights
    model = TwoTower(tower)
    wrapped = ray.train.torch.prepare_model(model, move_to_device=False)
    parts = list(ray.train.get_dataset_shard("train").iter_batches(batch_size=65_536, batch_format="numpy"))
    users, items = (np.concatenate([p[c] for p in parts]) for c in ("user", "item"))
    gather = None
    if world > 1:  # every collective needs the same batches on every worker: shards cut to the shortest
        length = torch.tensor([len(users)])
        dist.all_reduce(length, op=dist.ReduceOp.MIN)
        users, items = users[:int(length)], items[:int(length)]
        gather = _all_gather
    started = time.perf_counter()
    losses = tower_epochs(model, config["users"], config["items"], users, items, config["user_items"],
                          config["log_q"], np.random.default_rng(tower.seed + 10_007 * rank),
                          batch=max(1, tower.batch // world), forward=wrapped, gather=gather, rank=rank)
    if world > 1:  # each epoch's loss over all workers' pairs
        mean = torch.tensor(losses, dtype=torch.float64)
        dist.all_reduce(mean)
        losses = (mean / world).tolist()
    report = {"epochs": tower.epochs, "loss_history": losses, "seconds": time.perf_counter() - started,
              "pairs": config["rows"]}
    _finish(rank, report, lambda directory: torch.save(model.state_dict(), directory / STATE_FILE))


def _all_gather(tensor: Any) -> Any:
    """``tensor`` of every worker, concatenated in rank order; gradients flow back to each worker's part."""
    import torch
    import torch.distributed as dist
    from torch.distributed.nn.functional import all_gather

    if tensor.requires_grad:
        return torch.cat(all_gather(tensor))  # type: ignore[no-untyped-call]
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor)
    return torch.cat(parts)


def _ranker_loop(config: dict[str, Any]) -> None:
    """One Ray Train LightGBM worker of a LambdaMART fit: its own whole query groups, lambdarank data-parallel."""
    import ray.train
    from ray.train.lightgbm import get_network_params

    model: LambdaMART = config["model"]
    rank = ray.train.get_context().get_world_rank()
    parts = list(ray.train.get_dataset_shard(f"part_{rank}").iter_batches(batch_size=65_536, batch_format="numpy"))
    x, y, query = (np.concatenate([p[c] for p in parts]) for c in ("x", "label", "query"))
    order = np.argsort(query, kind="stable")  # a query's rows contiguous, in query order
    x, y, query = x[order], y[order], query[order]
    groups = np.diff(np.flatnonzero(np.r_[True, query[1:] != query[:-1], True]))
    report = model.fit_set(RankingSet(x, y, groups), config["valid"], tree_learner="data", pre_partition=True,
                           num_threads=1, **get_network_params())
    report.update(rows=config["rows"], queries=config["queries"])
    booster = model.booster
    if booster is None:
        raise RuntimeError("LightGBM returned no booster")
    _finish(rank, report, lambda directory: (directory / BOOSTER_FILE).write_text(booster.model_to_string()))


def query_parts(groups: np.ndarray, parts: int) -> list[slice]:
    """``parts`` contiguous row ranges of whole query groups, cut at the query boundaries nearest equal row counts."""
    starts = np.concatenate([[0], np.cumsum(groups)])  # where each query starts, then the total
    total = int(starts[-1])
    bounds = [0, *(int(starts[np.abs(starts - total * k / parts).argmin()]) for k in range(1, parts)), total]
    if any(a >= b for a, b in itertools.pairwise(bounds)):
        raise MlsdError(f"{len(groups)} queries of {total} rows cannot give each of {parts} workers a share")
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


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
        """Train ``model`` in place (its best epoch's weights, its best round's trees); the fit's report."""
        if isinstance(model, LightGBMModel):
            return self._fit_lightgbm(model, train, valid)
        if not isinstance(model, TorchClickModel):
            raise MlsdError(f"the Ray engine trains the PyTorch models and LightGBM; {model.kind!r} trains "
                            "embedded (drop --engine ray)")
        ray = ensure_ray()
        import torch
        from ray.train.torch import TorchConfig, TorchTrainer

        config = {"model": model, "valid": valid, "rows": len(train), "cache": self.cache,
                  "shuffle": self.shuffle_buffer}
        with self._run(TorchTrainer, _worker_loop, config, {"train": ray.data.from_arrow(_arrow(train))}, model.kind,
                       torch_config=TorchConfig(backend="gloo")) as directory:
            state = torch.load(directory / STATE_FILE, weights_only=True, map_location="cpu")
            report = FitReport(**json.loads((directory / REPORT_FILE).read_text()))
        model.network.load_state_dict(state)
        model.network.eval()
        return report

    def fit_two_tower(self, config: TowerConfig, users: UserInputs, items: ItemInputs, pair_users: np.ndarray,
                      pair_items: np.ndarray, user_items: list[np.ndarray]) -> tuple[TwoTower, dict[str, Any]]:
        """The two-tower fit on Ray Train: pair shards per worker, towers under DDP, global in-batch negatives.

        Each worker takes ``batch / workers`` pairs per step and scores its users against the item
        vectors of every worker's step (an all-gather that keeps gradients), so a step's loss and
        negatives are those of the embedded fit's batch; the log-Q correction counts all pairs.
        """
        ray = ensure_ray()
        import torch
        from ray.train.torch import TorchConfig, TorchTrainer

        pairs = pa.table({"user": np.asarray(pair_users, np.int64), "item": np.asarray(pair_items, np.int64)})
        loop_config = {"tower": config, "users": users, "items": items, "user_items": user_items,
                       "log_q": item_log_q(np.asarray(pair_items), config.n_items), "rows": len(pair_users)}
        with self._run(TorchTrainer, _tower_loop, loop_config, {"train": ray.data.from_arrow(pairs)}, "two_tower",
                       torch_config=TorchConfig(backend="gloo")) as directory:
            state = torch.load(directory / STATE_FILE, weights_only=True, map_location="cpu")
            report = json.loads((directory / REPORT_FILE).read_text())
        model = TwoTower(config)
        model.load_state_dict(state)
        model.eval()
        return model, report

    def fit_ranker(self, model: LambdaMART, train: RankingSet, valid: RankingSet | None) -> dict[str, Any]:
        """LambdaMART on Ray Train's LightGBM integration: each worker holds whole query groups.

        lambdarank's gradients compare the documents of one query, so a query must never straddle
        workers: the training rows are cut into ``workers`` contiguous runs of whole queries with
        about equal row counts, one dataset per worker (none split by Ray); every worker scores the
        whole validation set, so all stop at the same round.
        """
        import lightgbm as lgb
        from ray.train import DataConfig
        from ray.train.lightgbm import LightGBMTrainer

        ray = ensure_ray()
        query = np.repeat(np.arange(len(train.groups)), train.groups)
        datasets = {f"part_{rank}": ray.data.from_arrow(pa.table({
            "x": _tensor(train.x[rows]), "label": pa.array(train.labels[rows]), "query": pa.array(query[rows])}))
            for rank, rows in enumerate(query_parts(train.groups, self.workers))}
        config = {"model": model, "valid": valid, "rows": len(train.labels), "queries": len(train.groups)}
        with self._run(LightGBMTrainer, _ranker_loop, config, datasets, "lambdamart",
                       dataset_config=DataConfig(datasets_to_split=[])) as directory:
            model.booster = lgb.Booster(model_str=(directory / BOOSTER_FILE).read_text())
            return dict(json.loads((directory / REPORT_FILE).read_text()))

    def _fit_lightgbm(self, model: LightGBMModel, train: EncodedBatch, valid: EncodedBatch) -> FitReport:
        """Ray Train's LightGBM integration: data-parallel trees over the workers' row shards."""
        import lightgbm as lgb
        from ray.train.lightgbm import LightGBMTrainer

        ray = ensure_ray()
        if train.labels is None:
            raise ValueError("training batch has no labels")
        dataset = ray.data.from_arrow(pa.table({"x": _tensor(matrix(train)),
                                                "label": pa.array(train.labels.astype(np.float32))}))
        config = {"model": model, "valid_x": matrix(valid), "valid_y": valid.labels, "rows": len(train)}
        with self._run(LightGBMTrainer, _lightgbm_loop, config, {"train": dataset}, model.kind) as directory:
            model.booster = lgb.Booster(model_str=(directory / BOOSTER_FILE).read_text())
            report = FitReport(**json.loads((directory / REPORT_FILE).read_text()))
        return report

    @contextlib.contextmanager
    def _run(self, trainer_cls: Any, loop: Any, config: dict[str, Any], datasets: dict[str, Any], kind: str,
             **trainer_args: Any) -> Iterator[Path]:
        """Run a Ray Train trainer; yields its final checkpoint's directory (removed afterwards)."""
        from ray.train import FailureConfig, RunConfig, ScalingConfig

        with tempfile.TemporaryDirectory(prefix="mlsd-ray-train-", dir=self.storage) as storage:
            trainer = trainer_cls(
                loop, train_loop_config=config,
                scaling_config=ScalingConfig(num_workers=self.workers, use_gpu=False, resources_per_worker={"CPU": 1}),
                # a worker that dies (a native crash in gloo or torch was seen once in CI) restarts the
                # group once; the fit reruns from its seeds, so the result is the same
                run_config=RunConfig(name=f"{kind}-{self.workers}w", storage_path=storage,
                                     failure_config=FailureConfig(max_failures=1)),
                datasets=datasets, **trainer_args)
            result = trainer.fit()
            if result.checkpoint is None:
                raise MlsdError(f"Ray Train finished without a checkpoint ({result.error or 'no error reported'})")
            with result.checkpoint.as_directory() as directory:
                yield Path(directory)
