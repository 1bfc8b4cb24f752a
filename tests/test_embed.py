"""The upper-face crop that masked faces are also embedded from (no models needed)."""

from __future__ import annotations

import numpy as np

from recognition.engine.embed import MEAN_BGR, preprocess, upper_face


def test_upper_face_keeps_the_eyes_and_fills_the_rest_with_the_mean_colour():
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    before = crops.copy()
    up = upper_face(crops, 0.56)
    assert np.array_equal(crops, before)  # the caller's crops are left alone
    assert np.array_equal(up[:, :125], crops[:, :125])  # eyes (at 42% of the height), brows, forehead
    assert (up[:, 125:] == MEAN_BGR.astype(np.uint8)).all()
    # the filled part reaches the network as (nearly) zero input
    assert np.abs(preprocess(up)[:, 125:]).max() < 1.0
