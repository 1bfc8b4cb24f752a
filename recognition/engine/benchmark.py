"""Runners behind ``evaluate_pairs`` and ``evaluate_identification`` (plain Python, no Django)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import Engine, Face
from .errors import EngineError, NoFaceFound
from .evaluation import IMAGE_EXTS, identification_metrics, parse_pairs, verification_metrics
from .gallery import (
    compare,
    fit_thresholds,
    identify,
    person_templates,
    photo_templates,
    probe_threshold,
    usable_face,
)
from .index import Index

Progress = Callable[[int, int], None]


def _noop(done: int, total: int) -> None:
    pass


def main_face(engine: Engine, path: Path) -> tuple[Face | None, bool]:
    """The largest face of an image file and whether detection failed.

    On failure (no face, unreadable) the face is built by the documented fallback
    :meth:`Engine.assume_centred_face` so that no pair is ever dropped; ``None`` only
    when the file cannot be read at all.
    """
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None, True
    try:
        return engine.analyze(data, max_faces=3)[0], False
    except NoFaceFound:
        return engine.assume_centred_face(engine.decode(data)), True
    except EngineError:
        return None, True


def evaluate_pairs(engine: Engine, images: Path, pairs_file: Path, masked_list: Path | None = None,
                   progress: Progress = _noop, cache: dict | None = None) -> dict:
    """Verification on an LFW-format pairs file with the product's own pipeline.

    Returns the JSON contract of ``manage.py evaluate_pairs`` (see the README).
    ``cache`` (path -> (face, failed)) lets several runs share analysed images.
    """
    images = Path(images)
    pairs = parse_pairs(images, Path(pairs_file))
    paths = sorted({p.a for p in pairs} | {p.b for p in pairs})
    faces: dict[Path, Face | None] = {}
    cache = {} if cache is None else cache
    failed = []
    for i, path in enumerate(paths, 1):
        if path not in cache:
            cache[path] = main_face(engine, path)
        faces[path], fail = cache[path]
        if fail:
            failed.append(str(path.relative_to(images)) if path.is_relative_to(images) else str(path))
        progress(i, len(paths))
    scores = np.array([compare(engine, faces[p.a], faces[p.b]) if faces[p.a] and faces[p.b] else -1.0
                       for p in pairs])
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    result = verification_metrics(scores, same, folds)
    result.update({"failed_images": len(failed), "failed_image_paths": failed[:100],
                   "n_images": len(paths), "fallback": "centred-face alignment (Engine.assume_centred_face)"})
    if masked_list:
        masked = masked_entries(Path(masked_list), images)
        n_masked = np.array([(str(p.a.relative_to(images)) in masked) + (str(p.b.relative_to(images)) in masked)
                             for p in pairs])
        subsets = {}
        for name, k in (("unmasked_unmasked", 0), ("masked_unmasked", 1), ("masked_masked", 2)):
            sel = n_masked == k
            if sel.sum() >= 2 and same[sel].any() and (~same[sel]).any():
                m = verification_metrics(scores[sel], same[sel], folds[sel])
                subsets[name] = {"accuracy": m["accuracy"], "accuracy_std": m["accuracy_std"],
                                 "auc": m["auc"], "tar_at_far_1e-2": m["tar_at_far_1e-2"], "n": int(sel.sum())}
            else:
                subsets[name] = {"accuracy": None, "auc": None, "n": int(sel.sum())}
        result["subsets"] = subsets
    return result


def masked_entries(masked_list: Path, images: Path) -> set[str]:
    """The image paths a ``--masked-list`` names, relative to ``images`` (as ``mask_faces`` writes
    them; an absolute path under ``images`` is taken as well)."""
    entries = set()
    for line in masked_list.read_text(encoding="utf-8-sig").splitlines():   # a BOM is no part of a path
        entry = Path(line.strip())
        if not line.strip():
            continue
        if entry.is_absolute() and entry.is_relative_to(images.absolute()):
            entry = entry.relative_to(images.absolute())
        entries.add(str(entry))
    return entries


def person_images(root: Path) -> dict[str, list[Path]]:
    """``root/<person>/<images>`` -> {person: sorted image paths}."""
    out = {}
    for d in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if files:
            out[d.name] = files
    return out


def enrol_gallery(engine: Engine, enrolled: dict[str, list[Path]], rng: np.random.Generator,
                  step: Callable[[], None] = lambda: None) -> tuple[Index, dict[str, float], int]:
    """Enrol people's photos as the product does: a photo counts only with exactly one face that
    passes the quality gate and enrolment's own limits (:func:`usable_face`), its templates as the site stores them
    (:func:`photo_templates`), several photos of a person combined as the site combines them, and
    the site thresholds fitted on the gallery as a rebuild fits them (:func:`fit_thresholds`).

    Returns ``(index, site thresholds, photos refused)``; ``step`` is called once per photo."""
    index = Index(engine.dim)
    photo_index = Index(engine.dim)  # every photo's own templates: what probes look like
    failed = 0
    for person, files in enrolled.items():
        photos, qualities = [], []
        for path in files:
            step()
            try:
                face, _reason = usable_face(engine.analyze(Path(path).read_bytes()))
            except (EngineError, OSError):
                face = None
            if face is None:
                failed += 1  # enrollment refuses it (no face, several, quality, unreadable)
                continue
            photos.append(photo_templates(engine, face, rng))
            qualities.append(face.quality.score)
            photo_index.add(person, photos[-1].vectors, photos[-1].kinds)
        if photos:
            p = person_templates(photos, qualities)
            index.add(person, p.vectors, p.kinds, p.margins)
    site = fit_thresholds(index, photo_index, {"unmasked": engine.threshold(False),
                                               "masked": engine.threshold(True)})
    return index, site, failed


def evaluate_identification(engine: Engine, gallery: Path, probes: Path, progress: Progress = _noop,
                            seed: int = 0, min_face_px: float = 0.0) -> dict:
    """Open-set identification: enrol ``gallery`` as the product does (a photo counts only with
    exactly one face that passes the quality gate and enrolment's own limits, :func:`usable_face`;
    its templates as the site stores them, :func:`photo_templates`), fit the site thresholds on it as a rebuild does
    (:func:`fit_thresholds`), identify ``probes`` as the kiosk does: the largest face, and no
    decision (a miss, never an accept) for one the quality gate refuses or narrower than
    ``min_face_px`` (the kiosk's ``MASKNET_KIOSK_MIN_FACE_PX``: it asks them to come closer).

    Returns the JSON contract of ``manage.py evaluate_identification``.
    """
    rng = np.random.default_rng(seed)
    enrolled = person_images(gallery)
    probe_sets = person_images(probes)
    total = sum(map(len, enrolled.values())) + sum(map(len, probe_sets.values()))
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        progress(done, total)

    index, site, failed_gallery = enrol_gallery(engine, enrolled, rng, step)
    labels, scores, truth, known, thresholds = [], [], [], [], []
    failed_probes = refused_probes = masked_probes = 0
    for person, files in probe_sets.items():
        for path in files:
            done += 1
            progress(done, total)
            truth.append(person)
            known.append(person in index.identities)
            try:
                face = engine.analyze(path.read_bytes(), max_faces=3)[0]
            except (EngineError, OSError):
                face = None
                failed_probes += 1  # the kiosk would say "no face": a miss, never an accept
            if face is not None and (not face.quality.ok or face.width < min_face_px):
                refused_probes += 1  # the kiosk asks them to adjust (closer, lighter, still) and decides nothing
                masked_probes += face.masked
                face = None
            if face is None:
                labels.append(None)
                scores.append(float("-inf"))
                thresholds.append(probe_threshold(engine, False, site))
                continue
            masked_probes += face.masked
            d = identify(engine, face, index, site)
            labels.append(d.label)
            scores.append(d.score)
            thresholds.append(d.threshold)
    result = identification_metrics(labels, np.array(scores), truth, np.array(known), np.array(thresholds))
    result.update({"n_gallery_people": len(index.identities), "n_gallery_templates": len(index),
                   "failed_gallery_images": failed_gallery, "failed_probes": failed_probes,
                   "probes_refused_by_quality": refused_probes,
                   "probes_classified_masked": int(masked_probes), "thresholds": site})
    return result
