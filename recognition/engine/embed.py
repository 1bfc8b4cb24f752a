"""Face embeddings with HSE FaceRes (1024-d, L2-normalised)."""

from __future__ import annotations

import cv2
import numpy as np

INPUT_SIZE = 224
# VGGFace2 mean colour in BGR order. FaceRes scores 5-8 points higher on masked pairs
# with BGR-minus-mean input than with the RGB 0-255 input its JavaScript wrapper uses;
# on 600 LFW pairs: 98.3% vs 96.7% (see docs/accuracy.md).
MEAN_BGR = np.array([91.4953, 103.8827, 131.0912], np.float32)


def preprocess(aligned_bgr: np.ndarray) -> np.ndarray:
    """``Nx224x224x3`` uint8 BGR crops -> float32 model input (BGR minus the mean colour)."""
    return aligned_bgr.astype(np.float32) - MEAN_BGR


def upper_face(aligned_bgr: np.ndarray, cut: float, zoom: float = 1.0, eye_y: float = 0.42) -> np.ndarray:
    """Copies of ``Nx224x224x3`` aligned crops with every row from ``cut`` (a fraction of the
    height) down replaced by the mean colour: what is left is the eyes, brows and forehead, which
    a face mask does not cover. The mean colour is what the network sees as zero input.

    ``zoom`` > 1 first enlarges each crop by that factor about the eye line (the middle of the
    width, ``eye_y`` of the height), so that the eyes and brows fill more of it; the cut line moves
    with the image (the top of the forehead leaves the crop). Measured by bench/fusion.py --zoom; the
    engine looks once, unenlarged."""
    crops = np.array(aligned_bgr, copy=True)
    line = cut * crops.shape[1]
    if zoom != 1.0 and len(crops):
        h, w = crops.shape[1:3]
        cx, cy = w / 2, eye_y * h
        m = np.float32([[zoom, 0, cx * (1 - zoom)], [0, zoom, cy * (1 - zoom)]])
        fill = tuple(int(v) for v in MEAN_BGR)
        crops = np.stack([cv2.warpAffine(c, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=fill) for c in crops])
        line = cy + zoom * (line - cy)
    crops[:, int(line):] = MEAN_BGR.astype(np.uint8)
    return crops


def fuse_upper(whole: np.ndarray, upper: np.ndarray, weight: float) -> np.ndarray:
    """A masked face's matching vector: ``normalise((1 - weight) * whole + weight * upper)`` of its
    whole-face and upper-face embeddings (``weight`` 0: the whole face alone)."""
    if weight <= 0:
        return whole
    return l2_normalise((1.0 - weight) * whole + weight * upper).astype(np.float32)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation (zero rows stay zero)."""
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(n, 1e-12)


class FaceRes:
    """Wraps the converted FaceRes model (``serve(x) -> {'embedding': Nx1024}``)."""

    dim = 1024

    def __init__(self, serve, batch: int = 16) -> None:
        self._serve = serve
        self._batch = batch

    def __call__(self, aligned_bgr: np.ndarray, *, flip: bool = False) -> np.ndarray:
        """Embed ``Nx224x224x3`` BGR crops -> ``Nx1024`` float32, L2-normalised.

        With ``flip`` the embedding of the mirrored crop is added before normalising
        (flip test-time augmentation): one extra model call per face.
        """
        crops = np.asarray(aligned_bgr)
        if crops.ndim == 3:
            crops = crops[None]
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        if flip:
            crops = np.concatenate([crops, crops[:, :, ::-1]], 0)
        out = []
        for i in range(0, len(crops), self._batch):
            out.append(self._serve(preprocess(crops[i:i + self._batch]))["embedding"])
        emb = np.concatenate(out, 0)
        if flip:
            half = len(emb) // 2
            emb = l2_normalise(emb[:half]) + l2_normalise(emb[half:])
        return l2_normalise(emb).astype(np.float32)
