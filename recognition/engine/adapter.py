"""The masked-face embedding adapter ("embedding unmasking").

A small residual network trained by ``manage.py train_adapter`` maps the embedding of
a masked face towards the same person's unmasked embedding. It is applied only to
faces the classifier calls masked. Shipped as a float16 ``.npz`` (about 1 MB) with
its training metrics in a ``.json`` beside it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import ModelsMissing
from .files import UNREADABLE, savez_atomic, write_text_atomic

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_PATH = ASSETS / "adapter-v1.npz"


class Adapter:
    """``f(x) = normalise(x + relu(x @ w1 + b1) @ w2 + b2)`` in numpy (about 0.3 ms per face)."""

    def __init__(self, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray,
                 version: str = "") -> None:
        self.w1, self.b1 = w1.astype(np.float32), b1.astype(np.float32)
        self.w2, self.b2 = w2.astype(np.float32), b2.astype(np.float32)
        self.version = version

    @classmethod
    def load(cls, path: Path = DEFAULT_PATH) -> Adapter:
        """Load a saved adapter (``ModelsMissing`` if absent)."""
        try:
            with np.load(path) as d:
                return cls(d["w1"], d["b1"], d["w2"], d["b2"], version=Path(path).stem)
        except UNREADABLE as exc:
            raise ModelsMissing(f"adapter {path} missing or unreadable; run `manage.py train_adapter`") from exc

    def save(self, path: Path, metrics: dict) -> None:
        """Write weights (float16) and ``<path>.json`` with the training metrics."""
        path = Path(path)
        savez_atomic(path, compressed=True, shared=True, w1=self.w1.astype(np.float16), b1=self.b1.astype(np.float16),
                     w2=self.w2.astype(np.float16), b2=self.b2.astype(np.float16))
        write_text_atomic(path.with_suffix(".json"), json.dumps(metrics, indent=2, default=float))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Adapt ``NxD`` (or ``D``) L2-normalised embeddings; returns the same shape, normalised."""
        x = np.asarray(x, np.float32)
        y = x + np.maximum(x @ self.w1 + self.b1, 0) @ self.w2 + self.b2
        return y / np.maximum(np.linalg.norm(y, axis=-1, keepdims=True), 1e-12)
