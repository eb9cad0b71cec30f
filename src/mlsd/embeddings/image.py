"""MobileNet v1 (ImageNet, uint8-quantized) image embeddings: a TFLite model run by ``ai-edge-litert``.

The model file is read from the data directory (``models/``, checksum-verified through the dataset
registry). Two poolings of the same forward pass:

- ``avg`` (1024-d): the model's own output, the average pool of the last convolution, dequantized.
- ``gem`` (1536-d): generalized-mean pooling (p = 3) of the last two resolutions' final maps, the
  7x7x1024 ``Conv2d_13_pointwise`` and the 14x14x512 ``Conv2d_11_pointwise``, each L2-normalized
  and concatenated. GeM weights the strongest responses more than an average does (Radenović et al.
  2018), and the 14x14 map keeps texture and shape detail the last one has pooled away. On the
  fashion products it beats ``avg`` on validation queries as raw features and under one learned
  projection, not under the visual system's ensemble of five (benchmarks/RESULTS.md). Reading inner
  maps needs the interpreter to keep every tensor (``experimental_preserve_all_tensors``): it cost
  ~0.6 ms on a ~16 ms call here, and its "debugging only" warning is silenced for that reason.

Images arrive as encoded bytes (JPEG, PNG) or as 224x224x3 uint8 arrays; :func:`decode_image` turns
bytes into the model's input and raises :class:`ImageError` naming what is wrong (not an image, too
large, too small).
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlsd.core.errors import MlsdError
from mlsd.embeddings.base import encode_batches

DATASET = "mobilenet-v1-embedding"
MODEL_FILE = "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
SIDE = 224
MAX_IMAGE_BYTES = 4 << 20
MAX_PIXELS = 4096 * 4096  # decompression bombs are refused before they are decoded
MIN_SIDE = 32
POOLINGS = ("avg", "gem")
# The maps ``gem`` pools, by the prefix of their tensor names in the model file, with their channels.
GEM_MAPS = (("MobilenetV1/MobilenetV1/Conv2d_13_pointwise/Relu6", 1024),
            ("MobilenetV1/MobilenetV1/Conv2d_11_pointwise/Relu6", 512))


class ImageError(ValueError):
    """An input that is not a usable image; the message names the problem."""


def decode_image(data: bytes) -> np.ndarray:
    """Encoded image bytes -> a 224x224x3 uint8 array (RGB, resized with Pillow's bilinear filter)."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"image larger than {MAX_IMAGE_BYTES} bytes")
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise ImageError(f"image of {width}x{height} pixels is larger than {MAX_PIXELS} pixels")
            if min(width, height) < MIN_SIDE:
                raise ImageError(f"image of {width}x{height} pixels is smaller than {MIN_SIDE}x{MIN_SIDE}")
            rgb = img.convert("RGB")
            if rgb.size != (SIDE, SIDE):
                rgb = rgb.resize((SIDE, SIDE), Image.Resampling.BILINEAR)
            return np.asarray(rgb, np.uint8)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as exc:
        raise ImageError(f"not a readable image ({type(exc).__name__})") from None


class MobileNetEncoder:
    """Image embeddings (``pooling``: see the module); one interpreter per thread (a TFLite interpreter is
    not thread-safe)."""

    def __init__(self, data: str | Path | None = None, *, model_path: str | Path | None = None,
                 threads: int = 1, pooling: str = "avg") -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
        self.pooling = pooling
        # the ``avg`` name is the one older vector tables were built under, so they stay valid
        self.name = "mobilenet_v1_1.0_224_quant" + ("" if pooling == "avg" else "_gem3_c13_c11")
        self.dim = 1024 if pooling == "avg" else sum(channels for _, channels in GEM_MAPS)
        if model_path is None:
            from mlsd.datasets import locate

            model_path = locate(DATASET, data)[MODEL_FILE]
            from mlsd.datasets.registry import DATASETS

            self._sha = DATASETS[DATASET].files[0].sha256
        else:
            import hashlib

            self._sha = hashlib.sha256(Path(model_path).read_bytes()).hexdigest()
        self.model_path = Path(model_path)
        self.threads = threads
        self._local = threading.local()
        self._interpreter()  # fail now, not on the first request, if the runtime cannot load it

    @property
    def version(self) -> str:
        return f"{self.name}@{self._sha[:12]}"

    def _interpreter(self) -> Any:
        interpreter = getattr(self._local, "interpreter", None)
        if interpreter is None:
            try:
                from ai_edge_litert.interpreter import Interpreter
            except ImportError:
                raise MlsdError("the image encoder needs the PyPI package ai-edge-litert (pip install mlsd)") from None
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
                interpreter = Interpreter(model_path=str(self.model_path), num_threads=self.threads,
                                          experimental_preserve_all_tensors=self.pooling == "gem")
            interpreter.allocate_tensors()
            if self.pooling == "avg":
                out = interpreter.get_output_details()[0]
                outputs = [(out["index"], *out["quantization"])]
            else:
                details = interpreter.get_tensor_details()
                tensors = [_tensor(details, prefix, channels) for prefix, channels in GEM_MAPS]
                outputs = [(t["index"], *t["quantization"]) for t in tensors]
            self._local.interpreter = interpreter
            self._local.io = (interpreter.get_input_details()[0]["index"], outputs)
        return interpreter

    def pixels(self, item: Any) -> np.ndarray:
        """One input as the model's 224x224x3 uint8 array (bytes are decoded, arrays checked)."""
        if isinstance(item, bytes | bytearray | memoryview):
            return decode_image(bytes(item))
        array = np.asarray(item)
        if array.shape != (SIDE, SIDE, 3) or array.dtype != np.uint8:
            raise ImageError(f"an image array must be {SIDE}x{SIDE}x3 uint8, got {array.shape} {array.dtype}")
        return array

    def encode(self, inputs: Sequence[Any], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        interpreter = self._interpreter()
        index_in, outputs = self._local.io

        def one(item: Any) -> np.ndarray:
            interpreter.set_tensor(index_in, self.pixels(item)[None])
            interpreter.invoke()
            if self.pooling == "avg":
                index, scale, zero = outputs[0]
                levels = interpreter.get_tensor(index).reshape(-1).astype(np.float32)
                return np.asarray((levels - zero) * scale, np.float32)
            parts = []
            for index, _, zero in outputs:
                # GeM is homogeneous, so pooling the integer levels and normalizing drops the scale
                quantized = interpreter.get_tensor(index)
                levels = quantized.reshape(-1, quantized.shape[-1]).astype(np.float32) - zero
                part = np.cbrt((levels * levels * levels).mean(axis=0))
                parts.append(part / max(float(np.linalg.norm(part)), 1e-12))
            return np.concatenate(parts)

        def batch(chunk: Sequence[Any]) -> np.ndarray:
            rows = np.empty((len(chunk), self.dim), np.float32)
            for i, item in enumerate(chunk):  # the model's batch dimension is 1
                rows[i] = one(item)
            return rows

        return encode_batches(list(inputs), self.dim, batch, batch_size=batch_size, progress=progress,
                              desc=f"encoding images ({self.name})")


def _tensor(details: list[dict[str, Any]], prefix: str, channels: int) -> dict[str, Any]:
    """The model's tensor named ``prefix...`` with ``channels`` channels; a clear error if the file has none."""
    for detail in details:
        if detail["name"].startswith(prefix) and int(detail["shape"][-1]) == channels:
            return detail
    raise MlsdError(f"the image model has no tensor {prefix!r} of {channels} channels: not MobileNet v1 1.0?")

