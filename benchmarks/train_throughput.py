"""Training throughput (rows/s) of DCN-v2 and LightGBM through mlsd vs the library called directly.

Both sides get the same encoded matrix of generated marketplace impressions and the same settings
(LightGBM: parameters and rounds; DCN-v2: network, optimizers, batch size, epochs, shuffling), so
the ratio is mlsd's own overhead. Each side runs ``--repeats`` times, alternating; the best run counts.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import lightgbm as lgb
import numpy as np
import torch
from torch import nn

from _common import emit
from mlsd.datasets.marketplace import CATEGORICAL, AdMarketplace
from mlsd.training import EncodedBatch, FeatureEncoder
from mlsd.training.models.gbdt import DEFAULTS, LightGBMModel, matrix
from mlsd.training.models.neural import DCNv2Model

EMPTY = np.zeros(0, dtype=np.int64)


def encoded(rows: int) -> tuple[FeatureEncoder, EncodedBatch]:
    table = AdMarketplace(seed=0).events(rows, days=7)
    columns = {c: table.column(c).to_numpy() for c in CATEGORICAL}
    columns["hour_of_day"] = columns["hour"].astype(np.float64)
    encoder = FeatureEncoder(("hour_of_day",), CATEGORICAL).fit(columns)
    return encoder, encoder.transform(columns, table.column("click").to_numpy())


def lgbm_mlsd(encoder: FeatureEncoder, batch: EncodedBatch, rounds: int) -> float:
    started = time.perf_counter()
    LightGBMModel(encoder, rounds=rounds, early_stopping=0).fit(batch, batch.take(EMPTY))
    return time.perf_counter() - started


def lgbm_direct(encoder: FeatureEncoder, batch: EncodedBatch, rounds: int) -> float:
    started = time.perf_counter()
    categorical = list(range(len(encoder.numeric), len(encoder.columns)))
    data = lgb.Dataset(matrix(batch), batch.labels, categorical_feature=categorical, params={"verbose": -1})
    lgb.train({**DEFAULTS, "seed": 0, "metric": "binary_logloss"}, data, num_boost_round=rounds)
    return time.perf_counter() - started


def dcn_mlsd(encoder: FeatureEncoder, batch: EncodedBatch, epochs: int) -> float:
    model = DCNv2Model(encoder, epochs=epochs, patience=epochs + 1)
    started = time.perf_counter()
    model.fit(batch, batch.take(EMPTY))
    return time.perf_counter() - started


def dcn_direct(encoder: FeatureEncoder, batch: EncodedBatch, epochs: int) -> float:
    """The same network and optimizers in a plain PyTorch loop."""
    network = DCNv2Model(encoder).network
    sparse = [m.weight for m in network.modules() if isinstance(m, nn.Embedding)]
    dense_params = [p for p in network.parameters() if all(p is not s for s in sparse)]
    optimizers = [torch.optim.Adam(dense_params, lr=2e-3, weight_decay=1e-6), torch.optim.SparseAdam(sparse, lr=2e-3)]
    loss_fn = nn.BCEWithLogitsLoss()
    x, ids = torch.from_numpy(batch.dense), torch.from_numpy(batch.categorical)
    y = torch.from_numpy(np.asarray(batch.labels, dtype=np.float32))
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    network.train()
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(batch)))
        for start in range(0, len(batch), 1024):
            index = order[start:start + 1024]
            for optimizer in optimizers:
                optimizer.zero_grad()
            loss = loss_fn(network(x[index], ids[index]), y[index])
            loss.backward()
            for optimizer in optimizers:
                optimizer.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    encoder, batch = encoded(args.rows)
    best: dict[str, float] = {}
    runs: list[tuple[str, Any, int]] = [
        ("lgbm_mlsd", lgbm_mlsd, args.rounds), ("lgbm_direct", lgbm_direct, args.rounds),
        ("dcn_mlsd", dcn_mlsd, args.epochs), ("dcn_direct", dcn_direct, args.epochs)]
    for _ in range(args.repeats):
        for name, fn, amount in runs:
            seconds = fn(encoder, batch, amount)
            best[name] = min(best.get(name, float("inf")), seconds)
    result: dict[str, Any] = {"rows": args.rows, "lgbm_rounds": args.rounds, "dcn_epochs": args.epochs}
    for name, _, amount in runs:
        passes = amount if name.startswith("dcn") else 1
        result[f"{name}_rows_per_s"] = round(args.rows * passes / best[name])
    for family in ("lgbm", "dcn"):
        result[f"{family}_overhead"] = round(result[f"{family}_direct_rows_per_s"] / result[f"{family}_mlsd_rows_per_s"]
                                             - 1, 4)
    emit("train_throughput", result)


if __name__ == "__main__":
    main()
