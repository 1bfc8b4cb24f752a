"""Masked / not-masked decision: a logistic head on the FaceRes embedding.

The embedding already encodes whether the lower face is covered, so the decision
costs one dot product. The head is trained in TensorFlow by
``manage.py train_mask_classifier`` and shipped as a small ``.npz`` (weights, bias,
training metrics).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ModelsMissing
from .files import UNREADABLE

DEFAULT_PATH = Path(__file__).resolve().parent / "assets" / "mask_classifier.npz"


class MaskClassifier:
    """``p(masked) = sigmoid(embedding @ w + b)`` over L2-normalised embeddings."""

    def __init__(self, weights: np.ndarray, bias: float) -> None:
        self.weights = np.asarray(weights, np.float32).ravel()
        self.bias = float(bias)

    @classmethod
    def load(cls, path: Path = DEFAULT_PATH) -> MaskClassifier:
        """Load the shipped head (``ModelsMissing`` if it has not been trained)."""
        try:
            with np.load(path) as data:
                return cls(data["weights"], float(data["bias"]))
        except UNREADABLE as exc:
            raise ModelsMissing(f"mask classifier {path} missing or unreadable; run `manage.py train_mask_classifier`"
                                ) from exc

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        """Probabilities (N,) that each face wears a mask."""
        z = np.atleast_2d(embeddings) @ self.weights + self.bias
        return (1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))).astype(np.float32)
