"""The embedding stage: both encoders pass the contract kit; vector features through both stores."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlsd.core.errors import DefinitionError
from mlsd.embeddings import check_encoder
from mlsd.features import (
    Entity,
    Feature,
    FeatureStore,
    FeatureView,
    OfflineStore,
    SqliteOnlineStore,
    TableSource,
    vector_feature,
)

DATA = os.environ.get("MLSD_DATA_DIR")
TS = pa.timestamp("us", tz="UTC")


def test_minilm_passes_the_encoder_contract_and_places_similar_texts_close() -> None:
    from mlsd.embeddings.text import MiniLMEncoder

    encoder = MiniLMEncoder()
    texts = ["what a lovely sunny morning", "the weather is beautiful today", "my laptop battery died again"]
    check_encoder(encoder, texts)
    vectors = encoder.encode(texts)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)  # the model's own Normalize module
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert encoder.version.startswith("all-MiniLM-L6-v2@")


def _jpeg(seed: int, size: tuple[int, int] = (224, 224)) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(out, format="JPEG")
    return out.getvalue()


def test_decode_image_names_what_is_wrong() -> None:
    from mlsd.embeddings.image import ImageError, decode_image

    assert decode_image(_jpeg(1, (300, 200))).shape == (224, 224, 3)
    for data, problem in ((b"not an image at all", "not a readable image"), (_jpeg(2, (16, 16)), "smaller than"),
                          (b"\xff" * (5 << 20), "larger than")):
        with pytest.raises(ImageError, match=problem):
            decode_image(data)


@pytest.mark.data
@pytest.mark.skipif(not DATA, reason="MLSD_DATA_DIR not set")
def test_mobilenet_passes_the_encoder_contract_from_the_verified_model_file() -> None:
    from mlsd.embeddings.image import ImageError, MobileNetEncoder

    encoder = MobileNetEncoder(DATA)
    check_encoder(encoder, [_jpeg(1), _jpeg(2), np.zeros((224, 224, 3), np.uint8)])
    assert encoder.version.startswith("mobilenet_v1_1.0_224_quant@f409ef4f73fc")
    with pytest.raises(ImageError, match="224x224x3 uint8"):
        encoder.encode([np.zeros((10, 10), np.uint8)])


@pytest.mark.data
@pytest.mark.skipif(not DATA, reason="MLSD_DATA_DIR not set")
def test_mobilenet_gem_pools_the_last_two_resolutions_by_generalized_mean() -> None:
    from ai_edge_litert.interpreter import Interpreter

    from mlsd.embeddings.image import MobileNetEncoder

    encoder = MobileNetEncoder(DATA, pooling="gem")
    images = [_jpeg(1), _jpeg(2)]
    check_encoder(encoder, images)
    assert encoder.dim == 1536
    assert encoder.version.startswith("mobilenet_v1_1.0_224_quant_gem3_c13_c11@f409ef4f73fc")
    assert encoder.version != MobileNetEncoder(DATA).version  # vectors of one never pass for the other's
    # the same maps read independently, dequantized, pooled by (mean x^3)^(1/3) and normalized per part
    reference = Interpreter(model_path=str(encoder.model_path), experimental_preserve_all_tensors=True)
    reference.allocate_tensors()
    maps = {d["name"].split(";")[0]: d for d in reference.get_tensor_details()}
    reference.set_tensor(reference.get_input_details()[0]["index"], encoder.pixels(images[0])[None])
    reference.invoke()
    parts = []
    for layer in ("Conv2d_13_pointwise", "Conv2d_11_pointwise"):
        detail = maps[f"MobilenetV1/MobilenetV1/{layer}/Relu6"]
        scale, zero = detail["quantization"]
        x = (reference.get_tensor(detail["index"]).astype(np.float64) - zero) * scale
        pooled = np.power(np.power(x.reshape(-1, x.shape[-1]), 3).mean(axis=0), 1 / 3)
        parts.append(pooled / np.linalg.norm(pooled))
    assert np.allclose(encoder.encode(images[:1])[0], np.concatenate(parts), atol=1e-5)
    with pytest.raises(ValueError, match="pooling must be one of"):
        MobileNetEncoder(DATA, pooling="max")


def _vector_store(tmp_path: Path, encoder: str, vectors: np.ndarray) -> FeatureStore:
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({
        "doc": np.arange(len(vectors)), "score": np.arange(len(vectors), dtype=np.float64),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1]),
        "event_timestamp": pa.array(np.full(len(vectors), 1_000_000), pa.int64()).cast(TS)}), path)
    view = FeatureView("doc_vectors", (Entity("doc", ("doc",)),), TableSource(str(path)),
                       (vector_feature("embedding", vectors.shape[1]), Feature("score")), encoder=encoder)
    return FeatureStore(SqliteOnlineStore(tmp_path / "online.db"), OfflineStore(), [view])


def test_vector_features_round_trip_offline_and_online_as_one_matrix(tmp_path: Path) -> None:
    vectors = np.random.default_rng(0).normal(size=(6, 8)).astype(np.float32)
    store = _vector_store(tmp_path, "enc@1", vectors)
    assert store.materialize(end_us=2_000_000) == {"doc_vectors": 6}
    online = store.online_features(["doc_vectors"], {"doc": [4, 0, 99]})
    assert online["doc_vectors__embedding"].shape == (3, 8)
    assert np.array_equal(online["doc_vectors__embedding"][:2], vectors[[4, 0]])
    assert np.isnan(online["doc_vectors__embedding"][2]).all()  # an unknown entity: a row of NaN
    assert np.array_equal(online["doc_vectors__score"], [4.0, 0.0, np.nan], equal_nan=True)
    labels = pa.table({"doc": [2, 5], "event_timestamp": pa.array([1_500_000, 500_000], pa.int64()).cast(TS)})
    frame = store.training_frame(labels, ["doc_vectors"]).read_all()
    assert frame.schema.field("doc_vectors__embedding").type == pa.list_(pa.float32(), 8)
    rows = frame.sort_by("doc")["doc_vectors__embedding"].to_pylist()
    assert np.allclose(rows[0], vectors[2])
    assert rows[1] is None


def test_a_new_encoder_invalidates_vectors_built_with_the_old_one(tmp_path: Path) -> None:
    vectors = np.ones((3, 4), np.float32)
    _vector_store(tmp_path, "enc@1", vectors).materialize(end_us=2_000_000)
    store = _vector_store(tmp_path, "enc@2", vectors * 2)
    with pytest.raises(DefinitionError, match="encoder enc@1, its definition expects enc@2"):
        store.online_features(["doc_vectors"], {"doc": [0]})
    assert store.materialize(end_us=2_000_000) == {"doc_vectors": 3}  # all of it again, not incrementally
    assert np.array_equal(store.online_features(["doc_vectors"], {"doc": [0]})["doc_vectors__embedding"],
                          [[2.0] * 4])
    with pytest.raises(DefinitionError, match="fixed size"):
        Feature("bad", pa.list_(pa.float32()))
