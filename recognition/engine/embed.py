"""Face embeddings: HSE FaceRes (1024-d) and dlib's ResNet descriptor (128-d, face-api's port),
each L2-normalised, and how a face's matching vector joins them (:func:`join`)."""

from __future__ import annotations

import cv2
import numpy as np

from .align import five_point_similarity

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


def join(faceres: np.ndarray, resnet: np.ndarray, weight: float) -> np.ndarray:
    """One matching vector from both networks' L2-normalised embeddings: ``[sqrt(1 - w) * faceres,
    sqrt(w) * resnet]``, itself of unit length, so that the cosine of two joined vectors is
    ``(1 - w) * cos_FaceRes + w * cos_ResNet`` (score-level fusion in one index search)."""
    return np.concatenate([np.sqrt(1.0 - weight) * faceres, np.sqrt(weight) * resnet], axis=-1).astype(np.float32)


# dlib's face chip (get_face_chip_details(shape, 150, 0.25)): its mean face shape puts the eye
# centres at x 0.2255 / 0.7548 and y 0.2160 of the face box, padded by 0.25 on every side.
CHIP_SIZE = 150
CHIP_EYES_X = ((0.25 + 0.22549) / 1.5, (0.25 + 0.75476) / 1.5)
CHIP_EYE_Y = (0.25 + 0.21599) / 1.5


class ChipDescriptor:
    """A face descriptor fed its own chip cut from the engine's aligned crop (:meth:`chips`);
    ``serve(x) -> {'embedding': NxD}``."""

    dim = 0

    def __init__(self, serve, batch: int = 16) -> None:
        self._serve = serve
        self._batch = batch

    def chips(self, aligned_bgr: np.ndarray, matrices: list[np.ndarray | None] | None = None) -> np.ndarray:
        """The network's float32 input for ``NxSxSx3`` uint8 BGR aligned crops (``matrices``: per crop,
        where the network takes them, :class:`ArcFace`)."""
        raise NotImplementedError

    def __call__(self, aligned_bgr: np.ndarray, *, flip: bool = False,
                 matrices: list[np.ndarray | None] | None = None, masked: np.ndarray | None = None) -> np.ndarray:
        """Embed aligned BGR crops -> ``NxD`` float32, L2-normalised (``flip``: as :class:`FaceRes`).
        ``matrices``: per crop, the 2x3 transform from the crop to this network's chip, or ``None`` for
        its fixed chip (only the five-point chip descriptors take them, :class:`ArcFace`). ``masked``:
        per crop, whether it is a masked face, which gets the network's ``embedding_masked`` output
        where the converted network has one (SFace's learned feature-map gain)."""
        crops = np.asarray(aligned_bgr)
        if crops.ndim == 3:
            crops = crops[None]
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        x = self.chips(crops, matrices)
        rows = np.zeros(len(crops), bool) if masked is None else np.asarray(masked, bool)
        if flip:
            x = np.concatenate([x, x[:, :, ::-1]], 0)
            rows = np.concatenate([rows, rows])

        def run(i: int) -> np.ndarray:
            out = self._serve(x[i:i + self._batch])
            picked = rows[i:i + self._batch]
            if "embedding_masked" in out and picked.any():
                return np.where(picked[:, None], out["embedding_masked"], out["embedding"])
            return out["embedding"]

        emb = l2_normalise(np.concatenate([run(i) for i in range(0, len(x), self._batch)], 0))
        if flip:
            half = len(emb) // 2
            emb = emb[:half] + emb[half:]
        return l2_normalise(emb).astype(np.float32)


class DlibResNet(ChipDescriptor):
    """Wraps the converted face-api ResNet (``serve(x) -> {'embedding': Nx128}``, x RGB 0-255 at
    150x150). It is fed dlib's face chip, cut from the engine's aligned crop (eyes where dlib's
    training chips had them; the crop has room for it), so no second alignment is needed."""

    dim = 128

    def __init__(self, serve, aligned_size: int, eye_distance: float, eye_y: float, batch: int = 16) -> None:
        super().__init__(serve, batch)
        src = np.float32([[(0.5 - eye_distance / 2) * aligned_size, eye_y * aligned_size],
                          [(0.5 + eye_distance / 2) * aligned_size, eye_y * aligned_size]])
        dst = np.float32([[x * CHIP_SIZE, CHIP_EYE_Y * CHIP_SIZE] for x in CHIP_EYES_X])
        scale = (dst[1, 0] - dst[0, 0]) / (src[1, 0] - src[0, 0])
        self.chip_matrix = np.float32([[scale, 0, dst[0, 0] - scale * src[0, 0]],
                                       [0, scale, dst[0, 1] - scale * src[0, 1]]])

    def chips(self, aligned_bgr: np.ndarray, matrices: list[np.ndarray | None] | None = None) -> np.ndarray:
        """``Nx150x150x3`` float32 RGB chips of ``NxSxSx3`` uint8 BGR aligned crops (always dlib's chip)."""
        if matrices is not None:
            raise ValueError("dlib's ResNet is fed its own fixed chip")
        return np.stack([cv2.warpAffine(c, self.chip_matrix, (CHIP_SIZE, CHIP_SIZE), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REPLICATE)[:, :, ::-1]
                         for c in aligned_bgr]).astype(np.float32)


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


# InsightFace's 112x112 template puts the eye centres at x 38.29 / 73.53, y ~51.6 (51.70 / 51.50)
ARCFACE_SIZE = 112
ARCFACE_EYES_X = (38.2946, 73.5318)
ARCFACE_EYE_Y = 51.6
# its five points: eye centres (the subject's right first), nose tip, mouth corners
ARCFACE_TEMPLATE = np.float32([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                               [41.5493, 92.3655], [70.7299, 92.2041]])


class ArcFace(ChipDescriptor):
    """Wraps the converted ArcFace MobileFaceNet (``serve(x) -> {'embedding': Nx512}``, x NHWC RGB in
    [-1, 1] at 112x112). Its chip is cut from the engine's aligned crop on InsightFace's five-point
    template (:meth:`five_point_matrix`, from the face's landmarks: the engine's ``Face.chip_matrix``),
    or, for a face without landmarks, with the eyes where that template puts them (:attr:`chip_matrix`)."""

    dim = 512

    def __init__(self, serve, aligned_size: int, eye_distance: float, eye_y: float, batch: int = 16) -> None:
        super().__init__(serve, batch)
        src_x = ((0.5 - eye_distance / 2) * aligned_size, (0.5 + eye_distance / 2) * aligned_size)
        scale = (ARCFACE_EYES_X[1] - ARCFACE_EYES_X[0]) / (src_x[1] - src_x[0])
        self.chip_matrix = np.float32([[scale, 0, ARCFACE_EYES_X[0] - scale * src_x[0]],
                                       [0, scale, ARCFACE_EYE_Y - scale * eye_y * aligned_size]])

    @staticmethod
    def five_point_matrix(points: np.ndarray) -> np.ndarray:
        """2x3 transform putting a face's five points (``5x2``, pixels of its aligned crop: eye centres,
        nose tip, mouth corners, as :meth:`.landmarks.Landmarks.five_points`) on InsightFace's template
        by least squares: the chip the network was trained on (the eye-only chip leaves turned faces
        larger or smaller than it; docs/accuracy.md "Five-point chips for SFace")."""
        return five_point_similarity(points, ARCFACE_TEMPLATE)

    def rgb_chips(self, aligned_bgr: np.ndarray, matrices: list[np.ndarray | None] | None = None) -> np.ndarray:
        """``Nx112x112x3`` uint8 RGB chips of ``NxSxSx3`` uint8 BGR aligned crops, each cut with its
        matrix (``matrices``, one per crop; ``None`` for all or for one: the eye-only :attr:`chip_matrix`)."""
        ms = matrices if matrices is not None else [None] * len(aligned_bgr)
        return np.stack([cv2.warpAffine(c, self.chip_matrix if m is None else m, (ARCFACE_SIZE, ARCFACE_SIZE),
                                        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[:, :, ::-1]
                         for c, m in zip(aligned_bgr, ms, strict=True)])

    def chips(self, aligned_bgr: np.ndarray, matrices: list[np.ndarray | None] | None = None) -> np.ndarray:
        """``Nx112x112x3`` float32 RGB chips in [-1, 1] of ``NxSxSx3`` uint8 BGR aligned crops."""
        return (self.rgb_chips(aligned_bgr, matrices).astype(np.float32) - 127.5) / 127.5


class SFace(ArcFace):
    """Wraps the converted SFace (``serve(x) -> {'embedding': Nx128}``, x NHWC RGB 0-255 at 112x112: the
    graph normalises it). Same five-point chip as :class:`ArcFace` (SFace was trained on it)."""

    dim = 128

    def chips(self, aligned_bgr: np.ndarray, matrices: list[np.ndarray | None] | None = None) -> np.ndarray:
        """``Nx112x112x3`` float32 RGB chips, 0-255."""
        return self.rgb_chips(aligned_bgr, matrices).astype(np.float32)
