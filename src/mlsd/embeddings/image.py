"""MobileNet v1 (ImageNet, uint8-quantized) image embeddings: a TFLite model run by ``ai-edge-litert``.

The model file is read from the data directory (``models/``, checksum-verified through the dataset
registry); its 1024-d average-pool output is dequantized to float32. Images arrive as encoded bytes
(JPEG, PNG) or as 224x224x3 uint8 arrays; :func:`decode_image` turns bytes into the model's input
and raises :class:`ImageError` naming what is wrong (not an image, too large, too small).
"""

from __future__ import annotations

import io
import threading
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
    """1024-d image embeddings; one interpreter per thread (a TFLite interpreter is not thread-safe)."""

    name = "mobilenet_v1_1.0_224_quant"
    dim = 1024

    def __init__(self, data: str | Path | None = None, *, model_path: str | Path | None = None,
                 threads: int = 1) -> None:
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
            interpreter = Interpreter(model_path=str(self.model_path), num_threads=self.threads)
            interpreter.allocate_tensors()
            out = interpreter.get_output_details()[0]
            scale, zero = out["quantization"]
            self._local.interpreter = interpreter
            self._local.io = (interpreter.get_input_details()[0]["index"], out["index"], float(scale), int(zero))
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
        index_in, index_out, scale, zero = self._local.io

        def batch(chunk: Sequence[Any]) -> np.ndarray:
            rows = np.empty((len(chunk), self.dim), np.float32)
            for i, item in enumerate(chunk):  # the model's batch dimension is 1
                interpreter.set_tensor(index_in, self.pixels(item)[None])
                interpreter.invoke()
                rows[i] = (interpreter.get_tensor(index_out).reshape(-1).astype(np.float32) - zero) * scale
            return rows

        return encode_batches(list(inputs), self.dim, batch, batch_size=batch_size, progress=progress,
                              desc=f"encoding images ({self.name})")
