"""Training of the small learned parts (TensorFlow): the masked/unmasked head."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HeadFit:
    """A fitted logistic head: ``p = sigmoid(x @ weights + bias)`` and its held-out metrics."""

    weights: np.ndarray
    bias: float
    metrics: dict


def fit_logistic_head(x: np.ndarray, y: np.ndarray, *, seed: int = 0, epochs: int = 60,
                      l2: float = 1e-3, val_fraction: float = 0.2) -> HeadFit:
    """Fit a logistic regression in TensorFlow on ``x`` (NxD) and labels ``y`` (0/1).

    A seeded random ``val_fraction`` is held out for the reported accuracy; classes are
    re-weighted to balance them. Deterministic for a seed.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_val = int(len(x) * val_fraction)
    val, tr = order[:n_val], order[n_val:]
    tf.keras.utils.set_random_seed(seed)
    pos = float(y[tr].mean())
    class_weight = {0: 0.5 / max(1 - pos, 1e-6), 1: 0.5 / max(pos, 1e-6)}
    model = tf.keras.Sequential([
        tf.keras.Input((x.shape[1],)),
        tf.keras.layers.Dense(1, activation="sigmoid", kernel_regularizer=tf.keras.regularizers.l2(l2)),
    ])
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x[tr], y[tr], epochs=epochs, batch_size=64, verbose=0, class_weight=class_weight, shuffle=True)
    w, b = model.layers[-1].get_weights()
    p_val = 1 / (1 + np.exp(-(x[val] @ w[:, 0] + b[0])))
    metrics = {
        "n_train": int(len(tr)), "n_val": int(n_val),
        "val_accuracy": float(((p_val >= 0.5) == y[val]).mean()) if n_val else None,
        "val_accuracy_masked": float((p_val[y[val] == 1] >= 0.5).mean()) if (y[val] == 1).any() else None,
        "val_accuracy_unmasked": float((p_val[y[val] == 0] < 0.5).mean()) if (y[val] == 0).any() else None,
    }
    return HeadFit(w[:, 0].astype(np.float32), float(b[0]), metrics)
