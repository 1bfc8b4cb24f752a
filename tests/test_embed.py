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


def test_zoomed_upper_face_enlarges_about_the_eye_line_and_moves_the_cut():
    # a crop whose every pixel encodes its own row: the zoom's effect on rows can be read off
    rows = np.repeat(np.arange(224, dtype=np.uint8)[:, None], 224, axis=1)
    crops = np.repeat(rows[None, :, :, None], 3, axis=3)
    up = upper_face(crops, 0.56, zoom=1.5, eye_y=0.42)
    eye = int(0.42 * 224)
    line = int(0.42 * 224 + 1.5 * (0.56 * 224 - 0.42 * 224))  # the cut line, moved with the image
    assert abs(int(up[0, eye, 112, 0]) - eye) <= 1  # the eye line stays where it was
    # 30 rows above the eye line now show what was 20 rows above it: enlarged 1.5 times
    assert abs(int(up[0, eye - 30, 112, 0]) - (eye - 20)) <= 1
    assert (up[:, line:] == MEAN_BGR.astype(np.uint8)).all()
    assert (up[:, line - 1, :, 0] < 130).all()  # just above the moved line: still the face (row < 125)
    assert np.array_equal(upper_face(crops, 0.56, zoom=1.0), upper_face(crops, 0.56))
    assert upper_face(crops[:0], 0.56, zoom=1.5).shape == (0, 224, 224, 3)
