"""Speed benchmark: the engine's stages vs the ``face_recognition`` pipeline, and index search.

Usage: ``python bench/speed.py [--rounds N] [--no-dlib] [--out PATH] [--descriptor D]`` (``D``:
faceres+resnet, the default; sface, the site's default; arcface). On the same 640x480 JPEG frames (one face each, see
:mod:`frames`), interleaved frame by frame:

- ours: decode, detect (BlazeFace), landmarks (FaceMesh) + align + quality gate, embed (FaceRes
  with flip TTA, as configured), masked classifier, the second descriptor (dlib's ResNet, when the
  engine joins it), index search, and the whole of it
  (``Engine.analyze`` + ``gallery.identify`` from the JPEG bytes);
- theirs: decode + ``face_recognition.face_locations`` (HOG) + ``face_encodings``;
- the whole engine on the same frames with the product's masks drawn on (a masked face is also
  embedded from its upper face);
- the cost of flip TTA (FaceRes once vs twice per face);
- gallery search at 1k, 10k and 100k templates (exhaustive vs the two-stage search, their
  agreement, and a float16 copy of the templates for comparison).

With a chip descriptor (sface, arcface) FaceRes still runs, once without its mirror, for the masked
classifier; the SFace or ArcFace pass is the ``embed_chipnet`` stage. Prints a table and writes
``bench/results/speed.json`` (``speed-<descriptor>.json`` for another than faceres+resnet). Measures
the site's descriptor (``MASKNET_DESCRIPTOR``, SFace when unset) unless ``--descriptor`` says
another: ``make bench-speed`` and ``bench/latest.py`` report the engine the kiosks run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from frames import face_crops, jpeg, machine, make_frames, source_photos, stats  # noqa: E402
from provenance import descriptor_suffix, results_path, site_descriptor, write_json  # noqa: E402

from recognition.engine import EngineConfig, NoFaceFound, load_engine  # noqa: E402
from recognition.engine import index as index_mod  # noqa: E402
from recognition.engine.config import DESCRIPTORS  # noqa: E402
from recognition.engine.embed import upper_face  # noqa: E402
from recognition.engine.gallery import UNMASKED, identify  # noqa: E402
from recognition.engine.index import Index  # noqa: E402


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


def gallery_index(engine, crops, extra: int = 997, seed: int = 1) -> Index:
    """The bench faces as enrolled identities plus random filler templates (~1k in all)."""
    index = Index(engine.dim)
    for name, crop in crops:
        try:
            f = engine.analyze(crop)[0]
        except NoFaceFound:
            continue
        index.add(name, f.embedding[None])
    rng = np.random.default_rng(seed)
    filler = rng.standard_normal((extra, engine.dim)).astype(np.float32)
    index.add("filler", filler)
    return index


def stage_times(engine, data: bytes, index: Index) -> dict[str, float]:
    """One frame through the engine's stages, timed one by one (same work as ``Engine.analyze``)."""
    cfg = engine.config
    t = {}
    t0 = time.perf_counter()
    img = engine.decode(data)
    t["decode"] = _ms(t0)
    t0 = time.perf_counter()
    dets = engine.detector(img, min_confidence=cfg.detect_min_confidence, iou=cfg.detect_iou, max_faces=3)
    t["detect"] = _ms(t0)
    if not dets:
        return t
    dets.sort(key=lambda d: -(d.box[2] - d.box[0]))
    t0 = time.perf_counter()
    meshes = engine.mesh(img, dets)
    faces = [engine._align_and_gate(img, d, m) for d, m in zip(dets, meshes, strict=True)]
    t["landmarks_align"] = _ms(t0)
    crops = np.stack([f["aligned"] for f in faces])
    t0 = time.perf_counter()
    faceres = engine.embedder(crops, flip=cfg.flip_tta and engine.chipnet is None)  # as _embed_and_classify
    t["embed"] = _ms(t0)
    t0 = time.perf_counter()
    engine.mask_classifier(faceres)
    t["masked_classifier"] = _ms(t0)
    if engine.chipnet is not None:
        t0 = time.perf_counter()
        vectors = engine._chipnet(crops, np.zeros(len(crops), bool),  # an unmasked face's vector
                                  [f["chip_matrix"] for f in faces])
        t["embed_chipnet"] = _ms(t0)
    elif engine.resnet is not None:
        t0 = time.perf_counter()
        vectors = engine._join(crops, faceres, np.zeros(len(crops), bool))  # an unmasked face's stages
        t["embed_resnet"] = _ms(t0)
    else:
        vectors = faceres
    t0 = time.perf_counter()
    index.search(vectors[0], k=1, kinds=(UNMASKED,))
    t["search"] = _ms(t0)
    return t


def full_time(engine, data: bytes, index: Index) -> tuple[float, bool]:
    """JPEG bytes to a decision, as the kiosk does it; ``(ms, face found)``."""
    t0 = time.perf_counter()
    try:
        face = engine.analyze(data, max_faces=3)[0]
    except NoFaceFound:
        return _ms(t0), False
    identify(engine, face, index)
    return _ms(t0), True


def fr_time(fr, data: bytes) -> tuple[float, int]:
    """``face_recognition``'s pipeline on the same bytes: decode, HOG locations, encodings."""
    t0 = time.perf_counter()
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    locations = fr.face_locations(rgb, model="hog")
    fr.face_encodings(rgb, locations)
    return _ms(t0), len(locations)


def bench_engine(engine, frames: list[bytes], index: Index, rounds: int, fr) -> dict:
    """Stages, whole engine and face_recognition, interleaved frame by frame."""
    for data in frames[:3]:  # warm-up (graph tracing, caches)
        full_time(engine, data, index)
        if fr is not None:
            fr_time(fr, data)
    stages: dict[str, list[float]] = {}
    ours, theirs, found, fr_found = [], [], 0, 0
    for _ in range(rounds):
        for data in frames:
            for k, v in stage_times(engine, data, index).items():
                stages.setdefault(k, []).append(v)
            ms, ok = full_time(engine, data, index)
            ours.append(ms)
            found += ok
            if fr is not None:
                ms, n = fr_time(fr, data)
                theirs.append(ms)
                fr_found += n > 0
    out = {"stages": {k: stats(v) for k, v in stages.items()}, "engine": stats(ours),
           "engine_face_found": round(found / max(1, len(ours)), 3)}
    if fr is not None:
        out["face_recognition"] = stats(theirs)
        out["face_recognition_face_found"] = round(fr_found / max(1, len(theirs)), 3)
    return out


def bench_flip(engine, crops, n: int = 20) -> dict:
    """FaceRes per face with and without the mirrored copy (flip TTA stays on in the product)."""
    aligned = []
    for _, crop in crops:
        try:
            aligned.append(engine.analyze(crop, embed=False)[0].aligned)
        except NoFaceFound:
            pass
    out = {}
    for flip in (False, True):
        engine.embedder(aligned[0][None], flip=flip)
        ms = []
        for i in range(n):
            t0 = time.perf_counter()
            engine.embedder(aligned[i % len(aligned)][None], flip=flip)
            ms.append(_ms(t0))
        out["with_flip" if flip else "without_flip"] = stats(ms)
    return out


def bench_masked(engine, frames: list[np.ndarray], index: Index, rounds: int) -> dict:
    """The whole engine on the same frames with the product's masks drawn on: a face classified
    masked is embedded a second time (the upper face, ``Engine.embed_masked``), by both networks; the
    ResNet's upper-face pass is also timed alone (``resnet_upper``; ``arcface_upper`` with the opt-in
    descriptor)."""
    from recognition.engine.masks import render_mask

    masked = []
    for k, frame in enumerate(frames):
        try:
            face = engine.analyze(frame, max_faces=3, embed=False)[0]
        except NoFaceFound:
            continue
        if face.landmarks is not None:
            masked.append(jpeg(render_mask(frame, face.landmarks, np.random.default_rng(k))))
    for data in masked[:3]:
        full_time(engine, data, index)
    ms, classified, crops = [], 0, []
    for _ in range(rounds):
        for data in masked:
            t0 = time.perf_counter()
            try:
                face = engine.analyze(data, max_faces=3)[0]
            except NoFaceFound:
                continue
            identify(engine, face, index)
            ms.append(_ms(t0))
            classified += face.masked
            crops.append(face.aligned)
    out = {"engine": stats(ms), "frames": len(masked), "classified_masked": round(classified / max(1, len(ms)), 3)}
    if engine.resnet is not None and engine.config.resnet_upper_weight > 0 and crops:
        # the ResNet's upper-face pass a masked face adds (Engine._join; one crop, no mirror)
        up, cut = [], engine.config.upper_face_cut
        for crop in crops:
            t0 = time.perf_counter()
            engine.resnet(upper_face(crop[None], cut), flip=False)
            up.append(_ms(t0))
        out["resnet_upper"] = stats(up)
    if engine.chipnet is not None and engine.config.upper_face_weight > 0 and crops:
        # the chip descriptor's (SFace's, ArcFace's) upper-face pass a masked face adds (Engine._chipnet)
        up, cfg = [], engine.config
        for crop in crops:
            t0 = time.perf_counter()
            engine.chipnet(upper_face(crop[None], cfg.upper_face_cut), flip=cfg.flip_tta)
            up.append(_ms(t0))
        out[f"{engine.config.descriptor}_upper"] = stats(up)
    return out


def synthetic_gallery(n: int, dim: int, rng: np.random.Generator) -> tuple[Index, np.ndarray]:
    """``n`` templates of ``n // 3`` identities (3 each, kinds 0, 1, 1) and probes of some of them."""
    people = max(1, -(-n // 3))
    centres = rng.standard_normal((people, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vec = np.repeat(centres, 3, 0)[:n] + 0.9 * rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim)
    index = Index(dim)
    index.vectors = (vec / np.linalg.norm(vec, axis=1, keepdims=True)).astype(np.float32)
    index.labels = np.array([str(i // 3) for i in range(n)], dtype=object)
    index.kinds = np.tile(np.array([0, 1, 1], np.int8), people + 1)[:n]
    who = rng.integers(0, people, 200)
    probes = centres[who] + 1.1 * rng.standard_normal((200, dim)).astype(np.float32) / np.sqrt(dim)
    return index, probes


def exhaustive(index: Index, q: np.ndarray, kinds) -> tuple[str, float]:
    s = index.scores(q, kinds)
    i = int(np.argmax(s))
    return str(index.labels[i]), float(s[i])


def bench_search(dim: int, sizes=(1_000, 10_000, 100_000), reps: int = 50) -> dict:
    """Search time (k=1, unmasked probes: kind 0 only) and agreement with exhaustive search."""
    rng = np.random.default_rng(7)
    out = {}
    for n in sizes:
        index, probes = synthetic_gallery(n, dim, rng)
        t0 = time.perf_counter()
        index.search(probes[0], k=1, kinds=(UNMASKED,))  # builds the compact table when used
        first = _ms(t0)
        ms, ex_ms, agree = [], [], 0
        for i in range(reps):
            q = probes[i % len(probes)]
            t0 = time.perf_counter()
            best = index.search(q, k=1, kinds=(UNMASKED,))[0]
            ms.append(_ms(t0))
            t0 = time.perf_counter()
            label, score = exhaustive(index, q, (UNMASKED,))
            ex_ms.append(_ms(t0))
            agree += best.label == label and abs(best.score - score) < 1e-5
        for q in probes[reps:]:
            best = index.search(q, k=1, kinds=(UNMASKED,))[0]
            agree += best.label == exhaustive(index, q, (UNMASKED,))[0]
        half = index.vectors.astype(np.float16)
        f16 = []
        for i in range(min(reps, 10)):
            q = probes[i].astype(np.float16)
            t0 = time.perf_counter()
            int(np.argmax(half @ q))
            f16.append(_ms(t0))
        out[str(n)] = {"search": stats(ms), "exhaustive_float32": stats(ex_ms), "float16_numpy": stats(f16),
                       "two_stage": n >= index_mod.COARSE_MIN, "first_search_ms": round(first, 1),
                       "agreement_with_exhaustive": round(agree / len(probes), 4),
                       "memory_mb_float32": round(index.vectors.nbytes / 2**20, 1)}
        del index, half
    return out


def run(rounds: int, use_dlib: bool, descriptor: str = DESCRIPTORS[0]) -> dict:
    """The whole speed benchmark with ``descriptor``'s engine; returns the JSON document."""
    started = time.time()
    t0 = time.perf_counter()
    engine = load_engine(Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models")),
                         EngineConfig.for_descriptor(descriptor))
    load_s = time.perf_counter() - t0
    crops = face_crops(engine, source_photos())
    raw_frames = [f for _, f in make_frames(crops)]
    frames = [jpeg(f) for f in raw_frames]
    index = gallery_index(engine, crops)
    fr = None
    if use_dlib:
        try:
            import face_recognition as fr
        except ImportError:
            print("face_recognition is not installed (pip install -r requirements-bench.txt)", file=sys.stderr)
    doc = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
           "frames": len(frames), "frame_size": "640x480", "faces": [n for n, _ in crops], "rounds": rounds,
           "engine_load_s": round(load_s, 2), "flip_tta": engine.config.flip_tta, "gallery_templates": len(index),
           "descriptor": engine.config.descriptor}
    doc.update(bench_engine(engine, frames, index, rounds, fr))
    doc["masked_faces"] = bench_masked(engine, raw_frames, index, rounds)
    doc["flip_tta_cost"] = bench_flip(engine, crops)
    doc["index_search"] = bench_search(engine.dim)
    doc["machine"]["load_avg_end"] = [round(x, 2) for x in __import__("os").getloadavg()]
    return doc


def summary(doc: dict) -> dict:
    """The contract keys of ``latest.json`` that this benchmark fills."""
    ours = doc["engine"]["p50_ms"]
    theirs = (doc.get("face_recognition") or {}).get("p50_ms")
    return {"engine_p50_ms": ours, "engine_p95_ms": doc["engine"]["p95_ms"], "engine_fps": doc["engine"]["per_s"],
            "face_recognition_p50_ms": theirs,
            "speedup_vs_face_recognition": round(theirs / ours, 2) if theirs and ours else None,
            "search_ms_1k": doc["index_search"]["1000"]["search"]["p50_ms"],
            "search_ms_10k": doc["index_search"]["10000"]["search"]["p50_ms"],
            "search_ms_100k": doc["index_search"]["100000"]["search"]["p50_ms"]}


def print_table(doc: dict) -> None:
    m = doc["machine"]
    print(f"\n{m['cpu']} · {m['cores']} cores · load {m['load_avg']} -> {m['load_avg_end']} · "
          f"{doc['frames']} frames x {doc['rounds']} rounds")
    print(f"{'stage':<24}{'p50 ms':>9}{'p95 ms':>9}{'per s':>8}")
    rows = list(doc["stages"].items()) + [("engine (whole)", doc["engine"])]
    if "masked_faces" in doc:
        rows.append(("engine (masked face)", doc["masked_faces"]["engine"]))
        if "resnet_upper" in doc["masked_faces"]:
            rows.append(("  ResNet upper face", doc["masked_faces"]["resnet_upper"]))
        for name in ("sface", "arcface"):
            if f"{name}_upper" in doc["masked_faces"]:
                rows.append((f"  {name} upper face", doc["masked_faces"][f"{name}_upper"]))
    if "face_recognition" in doc:
        rows.append(("face_recognition (HOG)", doc["face_recognition"]))
    rows += [(f"FaceRes {k.replace('_', ' ')}", v) for k, v in doc["flip_tta_cost"].items()]
    for n, r in doc["index_search"].items():
        rows.append((f"search {int(n) // 1000}k", r["search"]))
        rows.append((f"  exhaustive {int(n) // 1000}k", r["exhaustive_float32"]))
    for name, s in rows:
        print(f"{name:<24}{s['p50_ms'] or 0:>9.2f}{s['p95_ms'] or 0:>9.2f}{s['per_s'] or 0:>8.1f}")
    s = summary(doc)
    print(f"speed-up vs face_recognition (ratio of medians): {s['speedup_vs_face_recognition']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="passes over the frames (default 3)")
    parser.add_argument("--no-dlib", action="store_true", help="skip the face_recognition baseline")
    parser.add_argument("--out", type=Path,
                        help="default bench/results/speed.json (speed-<descriptor>.json for another descriptor)")
    parser.add_argument("--descriptor", choices=DESCRIPTORS, default=site_descriptor(),
                        help="default the site's (MASKNET_DESCRIPTOR, sface when unset); faceres+resnet "
                             "(EngineConfig()'s) or arcface")
    args = parser.parse_args()
    if args.out is None:
        args.out = results_path(f"speed{descriptor_suffix(args.descriptor)}", REPO)
    doc = run(args.rounds, not args.no_dlib, args.descriptor)
    write_json(args.out, doc, newline=True)
    print_table(doc)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
