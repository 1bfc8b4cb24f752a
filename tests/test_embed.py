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


def test_five_point_similarity_recovers_a_known_similarity_by_least_squares():
    from recognition.engine.align import five_point_similarity

    angle, scale, shift = np.radians(12.0), 1.7, np.array([5.0, -9.0])
    truth = np.array([[scale * np.cos(angle), -scale * np.sin(angle), shift[0]],
                      [scale * np.sin(angle), scale * np.cos(angle), shift[1]]], np.float32)
    src = np.float32([[10, 20], [60, 22], [35, 50], [15, 80], [58, 78]])
    dst = transform_points(src, truth)
    assert np.allclose(five_point_similarity(src, dst), truth, atol=1e-4)
    # mirrored targets: still a rotation, never a reflection (det > 0)
    m = five_point_similarity(src, dst * np.float32([-1, 1]))
    assert np.linalg.det(m[:, :2]) > 0
    # noise on one point moves the fit less than it moves that point
    noisy = dst.copy()
    noisy[4] += 6.0
    assert np.abs(transform_points(src, five_point_similarity(src, noisy)) - dst).max() < 6.0


def test_a_chip_descriptor_cuts_each_crop_with_its_own_five_point_matrix():
    from recognition.engine.embed import ARCFACE_SIZE, ARCFACE_TEMPLATE, SFace

    cfg = EngineConfig.for_descriptor("sface")
    net = SFace(lambda x: {"embedding": x.reshape(len(x), -1)[:, :128] + 1.0},
                cfg.aligned_size, cfg.eye_distance, cfg.eye_y)
    # a face's five points in its aligned crop, a little smaller than the template's proportions
    points = ARCFACE_TEMPLATE * 1.6 + np.float32([25, 20])
    m = net.five_point_matrix(points)
    assert np.allclose(transform_points(points, m), ARCFACE_TEMPLATE, atol=1e-3)
    crop = np.zeros((2, cfg.aligned_size, cfg.aligned_size, 3), np.uint8)
    crop[:, 100:, :, 1] = 255   # the lower part of the crop green
    default, cut = net.chips(crop), net.chips(crop, [None, m])
    assert cut.shape == (2, ARCFACE_SIZE, ARCFACE_SIZE, 3)
    assert np.array_equal(default[0], cut[0]) and not np.array_equal(default[1], cut[1])
    # where the green starts on the chip follows the matrix: row 100 of the crop maps to its y
    row = float(transform_points(np.float32([[112, 100]]), m)[0, 1])
    green = np.nonzero(cut[1, :, ARCFACE_SIZE // 2, 1] > 128)[0]
    assert abs(green.min() - row) <= 1.5
    assert net(crop, matrices=[None, m]).shape == (2, 128)
