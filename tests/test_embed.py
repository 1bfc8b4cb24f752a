"""The upper-face crop that masked faces are also embedded from, the ResNet descriptor's chip and
how the two networks' embeddings are joined (no models needed)."""

from __future__ import annotations

import numpy as np

from recognition.engine.align import transform_points
from recognition.engine.config import EngineConfig
from recognition.engine.embed import (
    CHIP_EYE_Y,
    CHIP_EYES_X,
    CHIP_SIZE,
    MEAN_BGR,
    DlibResNet,
    join,
    l2_normalise,
    preprocess,
    upper_face,
)


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


def test_join_scores_are_the_weighted_sum_of_both_networks_cosines():
    rng = np.random.default_rng(1)
    fa, fb = l2_normalise(rng.standard_normal((2, 1024))), l2_normalise(rng.standard_normal((2, 1024)))
    ra, rb = l2_normalise(rng.standard_normal((2, 128))), l2_normalise(rng.standard_normal((2, 128)))
    for w in (0.0, 0.3, 0.75, 1.0):
        a, b = join(fa, ra, w), join(fb, rb, w)
        assert a.shape == (2, 1152) and a.dtype == np.float32
        assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)  # unit length: one cosine search
        expected = (1 - w) * np.sum(fa * fb, 1) + w * np.sum(ra * rb, 1)
        assert np.allclose(np.sum(a * b, 1), expected, atol=1e-5)


def test_resnet_chip_puts_the_aligned_eyes_where_dlib_chips_have_them():
    cfg = EngineConfig()
    net = DlibResNet(lambda x: {"embedding": np.ones((len(x), 128), np.float32)},
                     cfg.aligned_size, cfg.eye_distance, cfg.eye_y)
    s = cfg.aligned_size
    half = cfg.eye_distance / 2
    eyes = np.float32([[(0.5 - half) * s, cfg.eye_y * s], [(0.5 + half) * s, cfg.eye_y * s]])
    on_chip = transform_points(eyes, net.chip_matrix)
    assert np.allclose(on_chip, [[x * CHIP_SIZE, CHIP_EYE_Y * CHIP_SIZE] for x in CHIP_EYES_X], atol=1e-3)
    # the chip lies inside the aligned crop (no replicated border where the face is)
    corners = transform_points(np.float32([[0, 0], [s, s]]), net.chip_matrix)
    assert (corners[0] <= 0).all() and (corners[1] >= CHIP_SIZE).all()
    # colour order: a blue BGR crop gives a chip whose last (blue) RGB channel is high
    crop = np.zeros((1, s, s, 3), np.uint8)
    crop[..., 0] = 200
    chip = net.chips(crop)
    assert chip.shape == (1, CHIP_SIZE, CHIP_SIZE, 3) and chip.dtype == np.float32
    assert chip[..., 2].min() == 200 and chip[..., :2].max() == 0
    assert net(crop, flip=True).shape == (1, 128) and net(crop[:0]).shape == (0, 128)
