"""MaskNet's recognizer: a plain Python package (numpy in, plain data out; no Django).

Public verbs::

    engine = load_engine(models_dir, EngineConfig())   # once per process, cached
    faces = engine.analyze(image)                      # bytes or BGR ndarray -> list[Face]
    vectors = engine.embed([f.aligned for f in faces], [f.chip_matrix for f in faces])  # -> NxD (engine.dim)
    index = Index(engine.dim); index.add("42", vectors); index.search(faces[0].embedding)

Errors are typed (:mod:`.errors`): ``UnreadableImage``, ``FrameTooLarge``,
``NoFaceFound``, ``ModelsMissing``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# TensorFlow's C++ INFO and WARNING lines (oneDNN, CPU features) drowned the commands' own output;
# errors still show, and TF_CPP_MIN_LOG_LEVEL=0 in the environment brings everything back
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .align import eye_similarity, transform_points, warp
from .config import EngineConfig
from .decode import decode_image
from .detect import BlazeFaceDetector, Detection, box_iou
from .embed import ArcFace, DlibResNet, FaceRes, SFace, fuse_upper, join, upper_face
from .errors import EngineError, FrameTooLarge, ModelsMissing, NoFaceFound, UnreadableImage
from .index import Index, Match
from .landmarks import NOSE_TIP, FaceMesh, Landmarks
from .maskclf import DEFAULT_PATH as DEFAULT_MASK_CLASSIFIER
from .maskclf import MaskClassifier
from .quality import PARTIAL, TOO_SMALL, Quality, assess, outside_fraction, pose_ratios
from .registry import CHIP_NETS, RESNET_MODEL
from .runtime import check_runtime
from .runtime import load_model as _load_model

__all__ = [
    "Engine", "EngineConfig", "EngineError", "Face", "FrameTooLarge", "Index", "Match",
    "ModelsMissing", "NoFaceFound", "UnreadableImage", "load_engine",
]


# the border a face that fills its image is looked for within (Engine._filling_faces): a plain mid grey
FILL_BORDER_BGR = (128, 128, 128)
# a face box found in the whole image inside a face filling it and narrower than this share of it is a
# part of that face (a masked face's eyes and brows, cut close: 0.6-0.8 of it); one as wide is the face
PART_OF_FILLING_WIDTH = 0.85
# the longest side a photo is searched at for a face that fills it (scaled down to it, larger)
FILL_SEARCH_SIDE = 1024


def _part_of(box: tuple, face: tuple) -> bool:
    """Whether a face box is a part of the face ``face`` fills the picture with: its centre inside
    that face's box, and under :data:`PART_OF_FILLING_WIDTH` of its width."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return (face[0] <= cx <= face[2] and face[1] <= cy <= face[3]
            and box[2] - box[0] < PART_OF_FILLING_WIDTH * (face[2] - face[0]))


@dataclass(frozen=True, eq=False)
class Face:
    """One analysed face.

    ``box``: ``(x1, y1, x2, y2)`` pixels of the analysed image. ``score``: detector
    confidence. ``keypoints``: BlazeFace's 6 points (see :class:`.detect.Detection`).
    ``landmarks``: FaceMesh ``468x3`` points in image pixels, or ``None`` when the
    mesh was not confident (alignment then falls back to the detector's eyes).
    ``aligned``: ``224x224x3`` uint8 BGR crop, eyes at fixed positions; ``align_matrix``:
    the 2x3 transform from image pixels to that crop.
    ``quality``: the gate's measurements and verdict. ``masked_prob``: probability
    of a face mask. ``embedding``: the L2-normalised float32 vector it is matched by (``engine.dim``),
    or ``None`` if not computed: the descriptor ``EngineConfig.descriptor`` names (the site passes
    ``MASKNET_DESCRIPTOR``, SFace by default; ``EngineConfig()``'s own default is "faceres+resnet").
    SFace's (or ArcFace's) vector of the face's chip, a face classified masked taking the masked
    output, through the learned gain (see :meth:`Engine.embed_masked`); with "faceres+resnet",
    FaceRes's embedding joined with dlib's ResNet descriptor, a masked face's each fused with its
    upper face's.
    ``face_flag``: FaceMesh's probability that the crop it read holds a face (near 0 for the
    detector's false faces: a cup, a cat; low for some heavily masked or turned faces too).
    ``chip_matrix``: the 2x3 transform from ``aligned`` to the chip descriptor's five-point chip
    (``EngineConfig.chip_alignment``), or ``None`` (no chip descriptor, no landmarks, or eye-only chips).
    ``across_edge``: found only in the image extended by its own reflection, cut through by the
    image's edge (``analyze(search_edges=True)``): refused, never embedded.

    Its ``repr`` leaves out the arrays (pixels, points, the embedding): a face in a log line or
    an error message must not carry biometric data.
    """

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray = dataclasses.field(repr=False)
    landmarks: np.ndarray | None = dataclasses.field(repr=False)
    aligned: np.ndarray = dataclasses.field(repr=False)
    align_matrix: np.ndarray = dataclasses.field(repr=False)
    quality: Quality
    masked_prob: float
    embedding: np.ndarray | None = dataclasses.field(repr=False)
    masked: bool
    face_flag: float = 1.0
    chip_matrix: np.ndarray | None = dataclasses.field(default=None, repr=False)
    across_edge: bool = False

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return self.box[2] - self.box[0]


class Engine:
    """Detect, landmark, align, gate, classify masks and embed. Thread-safe: several threads (the
    kiosks' engine pool) call it at once, each model keeping a pool of interpreters
    (``runtime.py``), so concurrent calls run in parallel."""

    def __init__(self, detector: BlazeFaceDetector, mesh: FaceMesh, embedder: FaceRes,
                 mask_classifier: MaskClassifier | None, config: EngineConfig,
                 resnet: DlibResNet | None = None, chipnet: ArcFace | None = None) -> None:
        self.detector = detector
        self.mesh = mesh
        self.embedder = embedder
        # the chip descriptor (SFace or ArcFace; InsightFace's template) when the config names one
        self.chipnet = chipnet if config.descriptor in CHIP_NETS else None
        if config.descriptor in CHIP_NETS and chipnet is None:
            raise ValueError(f"EngineConfig.descriptor is {config.descriptor!r} but no such model was given")
        self.resnet = resnet if config.resnet_weight > 0 and self.chipnet is None else None
        self.mask_classifier = mask_classifier
        self.config = config

    @property
    def dim(self) -> int:
        """Embedding dimension (FaceRes's, plus the ResNet descriptor's when it is joined; ArcFace's
        or SFace's when it is the descriptor)."""
        if self.chipnet:
            return self.chipnet.dim
        return self.embedder.dim + (self.resnet.dim if self.resnet else 0)

    def decode(self, data: bytes) -> np.ndarray:
        """Decode untrusted bytes into BGR with the configured limits."""
        return decode_image(data, max_bytes=self.config.max_image_bytes, max_pixels=self.config.max_pixels)

    def analyze(self, image: np.ndarray | bytes, *, max_faces: int | None = None, embed: bool = True,
                search_tiles: bool = True, search_edges: bool = False, search_filled: bool = True) -> list[Face]:
        """Find, align, gate and embed the faces of an image, largest first.

        ``image``: encoded bytes or an ``HxWx3`` uint8 BGR array. Raises
        :class:`NoFaceFound` when there is no face, and the decoding errors for bad bytes.
        ``search_tiles``: a large image where nobody is found is searched again in tiles
        (:meth:`BlazeFaceDetector.__call__`); a kiosk's frames are not. ``search_edges``: an image
        where nobody is found is searched again for faces cut off by its edge (:meth:`_cut_faces`),
        which come back refused (``partial``, or ``too_small``) and never embedded: a kiosk's frames.
        ``search_filled``: the image is searched again for a face that fills it (:meth:`_filling_faces`),
        which the whole-image pass misses or takes a part of for a small face; a face found by both is
        the whole-image pass's. A kiosk's frames are not.
        """
        cfg = self.config
        img = self.decode(image) if isinstance(image, (bytes, bytearray, memoryview)) else image
        if (not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8
                or not img.shape[0] or not img.shape[1]):
            raise UnreadableImage("expected an HxWx3 uint8 BGR image")
        if img.shape[0] * img.shape[1] > cfg.max_pixels:
            raise FrameTooLarge(f"image is {img.shape[1]}x{img.shape[0]} pixels")
        dets = self.detector(img, min_confidence=cfg.detect_min_confidence, iou=cfg.detect_iou,
                             max_faces=max_faces or cfg.detect_max_faces,
                             fallback_confidence=cfg.detect_fallback_confidence, tiles=search_tiles)
        filling: list[tuple[Detection, Landmarks]] = []
        if search_filled:
            dets, filling = self._filling_faces(img, max_faces or cfg.detect_max_faces, dets)
        if not dets and not filling:
            cut = self._cut_faces(img, max_faces or cfg.detect_max_faces) if search_edges else []
            if cut:
                return cut
            raise NoFaceFound("no face found in the image")
        found = list(zip(dets, self.mesh(img, dets) if dets else [], strict=True)) + filling
        found.sort(key=lambda pair: -(pair[0].box[2] - pair[0].box[0]))
        faces = [self._align_and_gate(img, d, m) for d, m in found[:max_faces or cfg.detect_max_faces]]
        if not embed:
            return [Face(**f, embedding=None, masked_prob=float("nan"), masked=False) for f in faces]
        return self._finish(faces)

    def _filling_faces(self, img: np.ndarray, max_faces: int,
                       dets: list[Detection]) -> tuple[list[Detection], list[tuple[Detection, Landmarks]]]:
        """Faces that fill the image, too large for the detector to find in it (a photo cut to the
        face), with their meshes: found in the image within a plain border
        (``EngineConfig.fill_border`` of its shorter side), where the face is of a size the detector
        looks for, and kept when at least ``fill_min_share`` of that side wide and centred in the
        image. ``dets``: the faces the whole-image pass found. Returns those of ``dets`` that are not
        a part of a face filling the image (an eye and the nose taken for a small face), and the
        filling faces none of them already is (IoU 0.3 or more: the whole-image pass's face stays,
        and no mesh is run for its twin), in the image's coordinates, the box clipped to it as the
        detector's are."""
        cfg = self.config
        h, w = img.shape[:2]
        # searched at most FILL_SEARCH_SIDE pixels long (a face that fills the picture is large there
        # still): a 4096 px photo within its border was 43 million pixels, 129 MB, for one detector input
        scale = min(1.0, FILL_SEARCH_SIDE / max(h, w))
        small = img if scale == 1.0 else cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                    interpolation=cv2.INTER_AREA)
        sh, sw = small.shape[:2]
        side = min(sh, sw)
        pad = round(cfg.fill_border * side)
        if pad < 1:
            return dets, []
        wide = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=FILL_BORDER_BGR)
        found = self.detector(wide, min_confidence=cfg.detect_min_confidence, iou=cfg.detect_iou, max_faces=max_faces,
                              fallback_confidence=cfg.detect_fallback_confidence, tiles=False)
        found = [d for d in found if d.box[2] - d.box[0] >= cfg.fill_min_share * side
                 and pad <= (d.box[0] + d.box[2]) / 2 <= pad + sw and pad <= (d.box[1] + d.box[3]) / 2 <= pad + sh]
        if not found:
            return dets, []
        shift = np.array([pad, pad], np.float32)
        in_image = [Detection(box=(max((d.box[0] - pad) / scale, 0.0), max((d.box[1] - pad) / scale, 0.0),
                                   min((d.box[2] - pad) / scale, float(w)), min((d.box[3] - pad) / scale, float(h))),
                              keypoints=(d.keypoints - shift) / scale, score=d.score) for d in found]
        dets = [d for d in dets if not any(_part_of(d.box, f.box) for f in in_image)]
        # a filling face the whole-image pass found too stays that pass's: meshed once, there
        new = [i for i, f in enumerate(in_image) if not any(box_iou(d.box, f.box) >= 0.3 for d in dets)]
        if not new:
            return dets, []
        meshes = self.mesh(wide, [found[i] for i in new])
        offset = np.array([pad, pad, 0], np.float32)
        return dets, [(in_image[i], Landmarks(points=(m.points - offset) / np.float32(scale), score=m.score))
                      for i, m in zip(new, meshes, strict=True)]

    def faces_across_edge(self, img: np.ndarray, max_faces: int) -> list[Face]:
        """The search :meth:`analyze` makes with ``search_edges`` of an image where it found nobody
        (:meth:`_cut_faces`), for a caller that left out every face it found (the kiosk's background)."""
        return self._cut_faces(img, max_faces)

    def _cut_faces(self, img: np.ndarray, max_faces: int) -> list[Face]:
        """Faces cut off by the image's edge that the detector did not find in it, largest first: a
        face cut through its middle is found in the image extended on each side by its own
        reflection (``EngineConfig.edge_reflection``), where it shows whole, across the edge. Kept
        when its box reaches past the edge and FaceMesh is sure enough that it read a face
        (``edge_min_face_flag``); returned in the image's coordinates (the box clipped to it, as the
        detector's are) and refused: ``too_small``, else ``partial`` (``quality.outside``: the share
        of it outside the image). Their crops hold reflected pixels: never embedded."""
        cfg = self.config
        h, w = img.shape[:2]
        py, px = round(cfg.edge_reflection * h), round(cfg.edge_reflection * w)
        wide = cv2.copyMakeBorder(img, py, py, px, px, cv2.BORDER_REFLECT_101)
        dets = self.detector(wide, min_confidence=cfg.detect_min_confidence, iou=cfg.detect_iou,
                             max_faces=max_faces, fallback_confidence=cfg.detect_fallback_confidence, tiles=False)
        # across the edge: partly outside the image, and partly inside it
        dets = [d for d in dets if (d.box[0] < px or d.box[1] < py or d.box[2] > px + w or d.box[3] > py + h)
                and min(d.box[2], px + w) - max(d.box[0], px) >= 2 and min(d.box[3], py + h) - max(d.box[1], py) >= 2]
        if not dets:
            return []
        dets.sort(key=lambda d: -(d.box[2] - d.box[0]))
        shift = np.array([px, py], np.float32)
        faces = []
        for det, lm in zip(dets, self.mesh(wide, dets), strict=True):
            if lm.score < cfg.edge_min_face_flag:
                continue
            found = self._align_and_gate(wide, det, lm)
            matrix = np.array(found["align_matrix"], np.float32)
            matrix[:, 2] += matrix[:, :2] @ shift          # from the image's pixels, not the extended one's
            quality = found["quality"]
            quality = dataclasses.replace(quality, reason=TOO_SMALL if quality.reason == TOO_SMALL else PARTIAL,
                                          outside=outside_fraction(matrix, cfg.aligned_size, img.shape))
            x1, y1, x2, y2 = det.box
            box = (max(x1 - px, 0.0), max(y1 - py, 0.0), min(x2 - px, float(w)), min(y2 - py, float(h)))
            landmarks = None if found["landmarks"] is None else found["landmarks"] - np.array([px, py, 0], np.float32)
            faces.append(Face(box=box, score=det.score, keypoints=det.keypoints - shift, landmarks=landmarks,
                              aligned=found["aligned"], align_matrix=matrix, quality=quality,
                              masked_prob=float("nan"), embedding=None, masked=False, face_flag=found["face_flag"],
                              across_edge=True))
        return faces

    def _align_and_gate(self, img: np.ndarray, det: Detection, lm: Landmarks) -> dict:
        if lm.score >= self.config.mesh_min_confidence:
            right_eye, left_eye = lm.eye_centres()
            aligned = self._aligned(img, det.box, det.score, det.keypoints, lm.points,
                                    right_eye, left_eye, lm.points[NOSE_TIP, :2], lm.five_points())
        else:
            kp = det.keypoints
            aligned = self._aligned(img, det.box, det.score, kp, None, kp[0], kp[1], kp[2])
        return {**aligned, "face_flag": float(lm.score)}

    def _aligned(self, img, box, score, keypoints, landmarks, right_eye, left_eye, nose,
                 five: np.ndarray | None = None) -> dict:
        cfg = self.config
        matrix = eye_similarity(right_eye, left_eye, cfg.aligned_size, cfg.eye_distance, cfg.eye_y)
        aligned = warp(img, matrix, cfg.aligned_size)
        yaw, pitch = pose_ratios(np.asarray(right_eye), np.asarray(left_eye), np.asarray(nose))
        quality = assess(aligned, box[2] - box[0], yaw, pitch, cfg,
                         outside_fraction(matrix, cfg.aligned_size, img.shape))
        # the chip descriptor's chip on the five points, mapped into the aligned crop it is cut from
        chip = (type(self.chipnet).five_point_matrix(transform_points(five, matrix))
                if self.chipnet is not None and five is not None and cfg.chip_alignment == "five_point" else None)
        return {"box": box, "score": score, "keypoints": keypoints, "landmarks": landmarks,
                "aligned": aligned, "align_matrix": matrix, "quality": quality, "chip_matrix": chip}

    def _mask_probs(self, vectors: np.ndarray) -> np.ndarray:
        # without a classifier (only while training one) every face counts as unmasked
        return self.mask_classifier(vectors) if self.mask_classifier else np.zeros(len(vectors))

    def _finish(self, faces: list[dict]) -> list[Face]:
        crops = np.stack([f["aligned"] for f in faces])
        vectors, probs, masked = self._embed_and_classify(crops, [f["chip_matrix"] for f in faces])
        return [Face(**f, embedding=v, masked_prob=float(p), masked=bool(m))
                for f, v, p, m in zip(faces, vectors, probs, masked, strict=True)]

    def _embed_and_classify(self, crops: np.ndarray, matrices: list[np.ndarray | None] | None = None,
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # the classifier reads FaceRes's whole-face embedding; masked faces then get their matching vector.
        # With a chip descriptor (SFace, ArcFace) FaceRes feeds only the classifier: one pass without the mirror
        # (~8 ms a face; its decisions barely change: bench/maskhead.py, docs/performance.md)
        vectors = self.embedder(crops, flip=self.config.flip_tta and self.chipnet is None)
        probs = self._mask_probs(vectors)
        masked = probs >= self.config.masked_threshold
        if self.chipnet:
            return self._chipnet(crops, masked, matrices), probs, masked
        if masked.any():
            vectors = vectors.copy()
            vectors[masked] = self._fuse_upper(crops[masked], vectors[masked])
        return self._join(crops, vectors, masked), probs, masked

    def with_embedding(self, face: Face) -> Face:
        """A face analysed with ``embed=False``, completed with its embedding and mask decision
        (lets a caller embed only the faces it will use)."""
        vectors, probs, masked = self._embed_and_classify(face.aligned[None], [face.chip_matrix])
        return dataclasses.replace(face, embedding=vectors[0], masked_prob=float(probs[0]), masked=bool(masked[0]))

    def assume_centred_face(self, image: np.ndarray) -> Face:
        """Fallback for benchmarks when no face is detected in a face crop: align as if the
        face filled the centre of the image (eyes at 40%/60% of the width, 45% of the height)."""
        h, w = image.shape[:2]
        right_eye, left_eye = np.array([0.4 * w, 0.45 * h]), np.array([0.6 * w, 0.45 * h])
        nose = np.array([0.5 * w, 0.45 * h + 0.17 * w])
        kp = np.stack([right_eye, left_eye, nose, nose, right_eye, left_eye])
        box = (0.0, 0.0, float(w), float(h))
        return self._finish([self._aligned(image, box, 0.0, kp, None, right_eye, left_eye, nose)])[0]

    def embed(self, aligned_bgr: np.ndarray, matrices: list[np.ndarray | None] | None = None) -> np.ndarray:
        """Matching vectors of already aligned, unmasked ``Nx224x224x3`` BGR crops (``NxD``,
        L2-normalised): the chip descriptor's (SFace, the site's default, or ArcFace), each crop's chip cut with its
        ``matrices`` entry (``Face.chip_matrix``; ``None``: the eye-only chip); with "faceres+resnet",
        FaceRes's embedding joined with the ResNet descriptor's (``EngineConfig.resnet_weight``,
        :func:`.embed.join`)."""
        crops = np.asarray(aligned_bgr)
        if self.chipnet:
            return self._chipnet(crops, np.zeros(len(crops), bool), matrices)
        return self._join(crops, self.embedder(crops, flip=self.config.flip_tta), np.zeros(len(crops), bool))

    def embed_masked(self, aligned_bgr: np.ndarray, matrices: list[np.ndarray | None] | None = None) -> np.ndarray:
        """Matching vectors of masked faces (``NxD``, L2-normalised), as :meth:`analyze` gives a face
        classified masked: the chip descriptor's masked output (SFace's through its learned gain,
        ``EngineConfig.masked_gain``; fused with the upper face's where ``EngineConfig.upper_face_weight``
        is above 0, as for ArcFace); with "faceres+resnet", FaceRes's whole-face embedding fused with
        the upper face's, joined with the ResNet descriptor fused the same way
        (``EngineConfig.resnet_upper_weight``). Used for synthetic-mask enrolment templates
        (``matrices``: as :meth:`embed`; a synthetic mask drawn on a photo's crop is cut with that
        photo's ``Face.chip_matrix``)."""
        crops = np.asarray(aligned_bgr)
        if self.chipnet:
            return self._chipnet(crops, np.ones(len(crops), bool), matrices)
        return self._join(crops, self._fuse_upper(crops, self.embedder(crops, flip=self.config.flip_tta)),
                          np.ones(len(crops), bool))

    def _fuse_upper(self, crops: np.ndarray, whole: np.ndarray) -> np.ndarray:
        w = self.config.upper_face_weight
        if w <= 0 or len(crops) == 0:
            return whole
        upper = self.embedder(upper_face(crops, self.config.upper_face_cut), flip=self.config.flip_tta)
        return fuse_upper(whole, upper, w)

    def _chipnet(self, crops: np.ndarray, masked: np.ndarray,
                 matrices: list[np.ndarray | None] | None = None) -> np.ndarray:
        # a chip descriptor: a masked face's vector is fused with its upper face's when the weight is
        # above 0 (ArcFace; SFace matches a masked face by its whole face, EngineConfig.for_descriptor)
        cfg = self.config
        if matrices is None and cfg.chip_alignment == "five_point" and len(crops):
            # an eye-only chip beside the gallery's five-point chips would match silently worse
            raise ValueError("five-point chips: pass each crop's Face.chip_matrix (None where it has none)")
        if matrices is not None and len(matrices) != len(crops):
            raise ValueError(f"{len(matrices)} chip matrices for {len(crops)} crops")
        vectors = self.chipnet(crops, flip=cfg.flip_tta, matrices=matrices, masked=masked if cfg.masked_gain else None)
        if cfg.upper_face_weight > 0 and masked.any():
            sub = None if matrices is None else [m for m, k in zip(matrices, masked, strict=True) if k]
            upper = self.chipnet(upper_face(crops[masked], cfg.upper_face_cut), flip=cfg.flip_tta, matrices=sub)
            vectors[masked] = fuse_upper(vectors[masked], upper, cfg.upper_face_weight)
        return vectors

    def _join(self, crops: np.ndarray, faceres: np.ndarray, masked: np.ndarray) -> np.ndarray:
        # masked faces: the ResNet's descriptor of the whole face is fused with its descriptor of the
        # upper face (one pass, no mirror: the mirror measured no better there)
        if self.resnet is None:
            return faceres
        cfg = self.config
        resnet = self.resnet(crops, flip=cfg.flip_tta)
        if cfg.resnet_upper_weight > 0 and masked.any():
            upper = self.resnet(upper_face(crops[masked], cfg.upper_face_cut), flip=False)
            resnet[masked] = fuse_upper(resnet[masked], upper, cfg.resnet_upper_weight)
        return join(faceres, resnet, cfg.resnet_weight)

    def threshold(self, masked: bool) -> float:
        """The configured match threshold for a masked or unmasked probe."""
        return self.config.threshold_masked if masked else self.config.threshold_unmasked


def load_engine(models_dir: str | Path, config: EngineConfig = EngineConfig(),
                mask_classifier: str | Path | None = DEFAULT_MASK_CLASSIFIER, runtime: str | None = None) -> Engine:
    """Load every model once per process (cached by arguments) and return an :class:`Engine`.

    ``mask_classifier``: path of the masked/unmasked head; ``None`` only when training it.
    ``runtime``: ``"tflite"`` or ``"tensorflow"`` (:func:`.runtime.load_model`; default ``MASKNET_RUNTIME``).
    """
    # the defaults resolved first: omitting the runtime and naming the default share one engine
    return _load_engine(Path(models_dir), config, mask_classifier, check_runtime(runtime))


@functools.lru_cache(maxsize=4)
def _load_engine(models_dir: Path, config: EngineConfig, mask_classifier: str | Path | None, runtime: str) -> Engine:
    from .install import descriptor_installed, installed_manifest

    # the models this release converts, not merely models: the templates' version is this release's
    # (enrollment.recognizer.template_version), so templates made by an older conversion (another
    # gain, converter or manifest) would be cached under it for good, and matched as if current
    # (without the masked faces' gain, as train_adapter --feature-gain loads it, which gain the
    # conversion carries does not matter: a newly trained one is not converted yet)
    if installed_manifest(models_dir) is None or (
            config.descriptor in CHIP_NETS and config.masked_gain
            and not descriptor_installed(models_dir, config.descriptor)):
        raise ModelsMissing(f"the models in {models_dir} are missing or were installed by another release; "
                            "run `python manage.py install_models`")
    load_model = functools.partial(_load_model, runtime=runtime)
    clf = MaskClassifier.load(Path(mask_classifier)) if mask_classifier else None
    resnet = chipnet = None
    if config.descriptor in CHIP_NETS:
        wrapper = {"sface": SFace, "arcface": ArcFace}[config.descriptor]   # each scales its input its way
        serve = load_model(models_dir, CHIP_NETS[config.descriptor].model)
        if config.descriptor == "sface" and config.masked_gain and "embedding_masked" not in serve(
                np.zeros((1, 112, 112, 3), np.float32)):
            # its masked threshold is the gained descriptor's: plain masked vectors would let more strangers in
            raise ModelsMissing("SFace was converted without the masked faces' feature-map gain "
                                "(recognition/engine/assets/sface_gain-v1.npz); run `python manage.py install_models`")
        chipnet = wrapper(serve, config.aligned_size, config.eye_distance, config.eye_y)
    elif config.resnet_weight > 0:
        resnet = DlibResNet(load_model(models_dir, RESNET_MODEL), config.aligned_size, config.eye_distance,
                            config.eye_y)
    return Engine(BlazeFaceDetector(load_model(models_dir, "blazeface")),
                  FaceMesh(load_model(models_dir, "facemesh")),
                  FaceRes(load_model(models_dir, "faceres")),
                  clf, config, resnet, chipnet)
