"""Open-set identification of masked faces on every LFW DevTest person (issue 3): the one-photo FNIR
at FPIR 1e-2 measured on twice the people and strangers of the pair-by-pair bench.

``bench/featuremap.py``'s identification column (the figure issue 3's target is read on) uses only
the photos of ``pairsDevTest.txt``: about 60 enrolled probes and 119 strangers a fold, so a fold's
threshold at FPIR 1e-2 is set by its one or two best-matching strangers and a half point of FNIR is
three probes. This bench builds the same identification from every person of ``peopleDevTest.txt``
(1,711 people, never trained on): each person's first ``--max-photos`` photos (5; so that the few
people with a hundred photos do not outweigh the rest), the first photo of each person with two or
more enrolled, the others the probes, every one-photo person a stranger only; the folds, gallery and
decision of ``ablation.identification`` (fold k's people left out of the gallery and their probes the
strangers, fold k+1's the enrolled probes measured), about 110 enrolled probes and 230 strangers a
fold. Each photo and its masked copies go through exactly what the pair-by-pair bench's site row
does: the engine's detection and alignment (``ablation.image_crops``: the probe wearing a MaskTheFace
template, masks the product never saw, found again by the detector; four renderings of the product's
own masks on the photo), SFace's last feature map on the five-point chip under onnxruntime, masked
faces through the shipped gain (``--gain-file``), the mirror TTA, the renderings averaged into one
template, a masked probe scored by the best of photo and template (``featuremap.identification_scores``).

Rows: the site; without the gain; the photo alone (no templates); unmasked probes (the same photos
without masks, against the photos alone). And the site with people enrolled from two and from three
photos (``gallery.person_templates``' mean of them, as the product enrols several photos; people
with more photos than that enrolled, the rest strangers only), each beside the first photo alone
on the same probes and strangers; and gallery adaptation (``MASKNET_GALLERY_ADAPT``): people enrolled
from their first photo who check in unmasked with their second, kept when the kiosk would keep it
(the best match is them, at the unmasked threshold plus a margin: 0, 0.1 the product's default, 0.2),
on the probes and strangers of two photos, with the number of check-ins kept and of strangers'
unmasked photos that would be kept as someone's. The same rows on the pair-by-pair bench's own images
(``pairsDevTest.txt``'s, a subset of this bench's photos plus their 159 photos past the fifth) check
the machinery against ``bench/featuremap.py``'s figures; their masks are drawn anew here (each
photo's random stream is its place among this bench's photos), so they differ by a rendering's
spread.

The masks' random draw moves the FNIR by up to a point per fold and two pooled even here, up to three
on the pair-by-pair bench's photos (docs/accuracy.md "Every DevTest person"): ``--stream 0 1 2``
measures three draws and prints their mean, the figure to compare levers by.

Usage: ``python bench/people.py [--max-photos 5] [--jobs 2] [--gain-file NPZ] [--stream K [K ...]]`` (about
20 minutes a stream on 2 cores the first time; the vectors are cached in ``var/bench/people``, seconds
after). Needs ``onnxruntime`` (``requirements-bench.txt``). Prints the tables and writes
``bench/results/people.json`` (``people-stream0-1-2.json`` with other streams, ``people-Nphotos...``
with another ``--max-photos``, ``people-gain<digest>...`` with another ``--gain-file``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))   # the spawned workers import this module by name

import ablation  # noqa: E402  (bench/ is on sys.path)
import descriptors  # noqa: E402
import featuremap  # noqa: E402
from provenance import provenance, settings_digest, write_results  # noqa: E402

from recognition.engine.embed import l2_normalise  # noqa: E402
from recognition.engine.gallery import SYNTHETIC_MASK, UNMASKED, Templates, person_templates  # noqa: E402

WORK = REPO / "var" / "bench" / "people"
GAIN = REPO / "recognition" / "engine" / "assets" / "sface_gain-v1.npz"
RENDERINGS = 4   # product-mask renderings of each photo, averaged into one template as the product does
KINDS = ("orig", "mtf") + tuple(f"prod{i}" for i in range(RENDERINGS))


def people_keys(people: list[tuple[str, int]], max_photos: int) -> list[tuple[str, int]]:
    """``(name, number)`` of each person's first ``max_photos`` photos (``people``: ``peopleDevTest.txt``'s
    rows, name and photo count), sorted."""
    return sorted((name, i) for name, count in people for i in range(1, min(count, max_photos) + 1))


def pair_keys(pairs: list) -> list[tuple[str, int]]:
    """The photos of ``ablation.devtest_pairs``' pairs, sorted: the pair-by-pair bench's images."""
    return sorted({p[0] for p in pairs} | {p[1] for p in pairs})


# one engine, network, gain and template set per worker process (_start)
_STATE: dict = {}


def _start(gain_file: str) -> None:
    from recognition.engine import load_engine
    from recognition.engine.masks import load_templates

    with np.load(gain_file) as z:
        gain, mean = z["gain"].astype(np.float32), z["mean"].astype(np.float32)
    _STATE.update(engine=load_engine(Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models")), descriptors.CFG),
                  net=featuremap.SFaceMaps(descriptors.fetch(descriptors.WHEELS["sface"])),
                  change=featuremap.gained(gain, mean),
                  templates=load_templates(ablation.SHARED / "masks"))


def photo_rng(index: int, stream: int) -> np.random.Generator:
    """The random stream of the ``index``-th photo: ``ablation.image_rng`` (stream 0), or another one
    for each ``stream`` (the masks drawn anew)."""
    return ablation.image_rng(index) if stream == 0 else np.random.default_rng([index, 7, stream])


def photo_vectors(index: int, key: tuple[str, int], stream: int = 0) -> dict | None:
    """One photo's vectors, ``{"vectors": {kind: (plain, gained)}, "mtf_lost": bool, "mtf_mask": str}``: for the photo
    (``orig``), its MaskTheFace copy (``mtf``) and its product-mask renderings (``prod0``...), each the
    normalised sum of the chip's and its mirror image's descriptors, of the map as it is and through
    the gain; ``mtf_lost``: the detector lost the masked copy (cut on the photo's alignment instead,
    as the pair-by-pair bench does); ``mtf_mask``: the MaskTheFace mask's type. ``None``: no face in
    the photo. ``index`` (the photo's place among the bench's photos) and ``stream`` pick its random
    stream (:func:`photo_rng`)."""
    s = _STATE
    rec, _, _ = ablation.image_crops(s["engine"], ablation.read_image(*key), photo_rng(index, stream),
                                     s["templates"], True, RENDERINGS)
    if rec is None:
        return None
    kinds = [k for k in KINDS if ablation.crop_of(rec, k) is not None]
    crops = np.stack([ablation.crop_of(rec, k) for k in kinds])
    points = [ablation.five_of(rec, k) for k in kinds]
    chips = descriptors.chips(crops, descriptors.chip_matrices(descriptors.SFace, points), 112)
    net = s["net"]
    # float16 maps, as bench/featuremap.py caches and measures them
    maps = [net.maps(c)[1].astype(np.float16) for c in (chips, np.ascontiguousarray(chips[:, :, ::-1]))]
    plain = l2_normalise(sum(net.head(m) for m in maps))
    gained = l2_normalise(sum(net.head(s["change"](m)) for m in maps))
    return {"vectors": {k: (plain[i], gained[i]) for i, k in enumerate(kinds)}, "mtf_lost": bool(rec.get("mtf_lost")),
            "mtf_mask": rec.get("mtf_mask")}


def _chunk(items: list[tuple[int, tuple[str, int]]], stream: int) -> dict:
    return {key: photo_vectors(i, key, stream) for i, key in items}


def cache_path(keys: list[tuple[str, int]], gain_file: Path, stream: int) -> Path:
    """Where :func:`all_vectors` caches ``keys``' vectors: a name keyed by the photos, the renderings,
    the stream, the gain file's bytes, the MaskTheFace templates' files and (``ablation.cache_file``'s
    key) the engine's settings, its installed models and runtime, and the SFace wheel's digest."""
    masks = sorted((f.name, f.stat().st_size) for f in (ablation.SHARED / "masks").rglob("*") if f.is_file())
    settings = settings_digest(descriptors.CFG.with_(**ablation.DECIDING), descriptors.WHEELS["sface"].sha256, masks)
    setting = (keys, RENDERINGS, stream, settings)
    digest = hashlib.sha256(repr(setting).encode() + gain_file.read_bytes()).hexdigest()[:16]
    return WORK / f"vectors-{digest}.pkl"


def all_vectors(keys: list[tuple[str, int]], gain_file: Path, jobs: int, stream: int = 0) -> dict:
    """``{key: photo_vectors(...)}`` for ``keys`` (cached: :func:`cache_path`), computed by ``jobs``
    worker processes."""
    path = cache_path(keys, gain_file, stream)
    if path.exists():
        return pickle.loads(path.read_bytes())
    items = list(enumerate(keys))
    chunks = [items[i:i + 25] for i in range(0, len(items), 25)]
    out: dict = {}
    t0 = time.time()
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_start,
                             initargs=(str(gain_file),)) as pool:
        for n, part in enumerate(pool.map(_chunk, chunks, [stream] * len(chunks)), 1):
            out.update(part)
            if n % 10 == 0 or n == len(chunks):
                print(f"  {len(out)}/{len(keys)} photos, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    WORK.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(out))
    return out


def vector_sets(vectors: dict, keys: list, gain: bool, unmasked_probes: bool = False) -> dict:
    """``featuremap.identification_scores``' input for ``keys``: per kind ``{key: vector}`` as a masked
    probe meets them (the masked kinds through the gain if ``gain``; the photo plain), the product
    renderings averaged into one template (``featuremap.mean_template``). ``unmasked_probes``: the
    probes are the photos themselves (plain) and meet the photo alone, as an unmasked face does."""
    out: dict = {k: {} for k in KINDS}
    for key in keys:
        for kind, (plain, gained) in (vectors.get(key) or {"vectors": {}})["vectors"].items():
            out[kind][key] = gained if gain and kind != "orig" else plain
    if unmasked_probes:
        return {"orig": out["orig"], "mtf": out["orig"]}
    return featuremap.mean_template(out)


ROWS = (("the site: gain, four renderings averaged into one template, mirror", True, True, False),
        ("without the gain", False, True, False),
        ("the gain, photo alone (no templates)", True, False, False),
        ("unmasked probes (the same photos without masks), photo alone", False, False, True))


def measure(vectors: dict, keys: list) -> dict:
    """Each of :data:`ROWS`' identification figures (``ablation.identification``) on ``keys``' photos."""
    out = {}
    for label, gain, templates, unmasked in ROWS:
        sets = vector_sets(vectors, keys, gain, unmasked)
        scores = featuremap.identification_scores(sets, keys, templates and not unmasked)
        out[label] = ablation.identification(None, keys, {}, scores=scores)
    return out


def enrolment_scores(sets: dict, keys: list, enrolled: int, photos: int | dict[str, list]) -> np.ndarray:
    """Probes x gallery scores of ``ablation.identification_sets(keys, enrolled)``: each enrolled
    person from their first ``photos`` photos (at most ``enrolled``; fewer: the same probes and
    strangers met by fewer photos; a dict: each person's own photos, keys), combined as the product
    combines a person's photos (``gallery.person_templates``: per kind the mean of the photos'
    templates, each photo's weight unknown, less the margin the photos' spread sets); a masked probe
    scored by the best of the person's templates less its margin. ``sets``: :func:`vector_sets`' (the
    site's: gain, averaged template); a photo without a face adds nothing, a person or probe without any scores -1."""
    gallery, probes = ablation.identification_sets(keys, enrolled)
    names = sorted(gallery)
    own: dict[str, list] = {}
    for key in sorted(keys):
        own.setdefault(key[0], []).append(key)
    dim = len(next(iter(sets["orig"].values())))
    probe = np.stack([sets["mtf"].get(k, np.full(dim, np.nan)) for k, _ in probes])
    scores = np.full((len(probes), len(names)), np.nan)
    kinds = np.array([UNMASKED, SYNTHETIC_MASK], np.int8)
    for j, name in enumerate(names):
        per_photo = [Templates(np.stack([sets["orig"][k], sets["prod0"][k]]), kinds)
                     for k in (own[name][:photos] if isinstance(photos, int) else photos[name])
                     if k in sets["orig"] and k in sets["prod0"]]
        if per_photo:
            person = person_templates(per_photo, [None] * len(per_photo))
            scores[:, j] = (probe @ person.vectors.T - person.margins[None, :]).max(axis=1)
    return np.nan_to_num(scores, nan=-1.0)


def measure_enrolment(vectors: dict, keys: list, counts: tuple[int, ...] = (2, 3)) -> dict:
    """The site's identification (gain, averaged template, mirror) with people enrolled from their
    first n photos (each n of ``counts``; people with more than n photos enrolled, their other photos
    the probes), and the same probes and strangers met by the first photo alone."""
    sets = vector_sets(vectors, keys, True)
    out = {}
    for n in counts:
        for photos, label in ((n, f"the site, {n} enrolment photos (the product's mean of them, less its margin)"),
                              (1, f"the site, 1 enrolment photo, the probes and strangers of {n}")):
            out[label] = ablation.identification(None, keys, {}, scores=enrolment_scores(sets, keys, n, photos),
                                                 enrolled=n)
    return out


def _unmasked_template(sets: dict, photos: list) -> tuple[np.ndarray, float]:
    """A person's unmasked template from their kept ``photos`` as the product combines them
    (``gallery.person_templates``: the mean of the photos' plain vectors, less the margin their
    spread sets; one photo: itself, margin 0)."""
    person = person_templates([Templates(sets["orig"][k][None], np.array([UNMASKED], np.int8)) for k in photos],
                              [None] * len(photos))
    return person.vectors[0], float(person.margins[0])


def adaptation(sets: dict, keys: list, threshold: float, margin: float = 0.0,
               checkins: int = 1) -> tuple[dict[str, list], dict]:
    """Gallery adaptation as the product does it (``enrollment.services.photo_add_from_checkin``): each
    person of ``ablation.identification_sets(keys, 1 + checkins)``'s gallery, enrolled from their first
    photo, checks in unmasked with their next ``checkins`` photos in turn, everyone's first check-in
    before anyone's second. A check-in's plain vector meets every gallery person's unmasked template
    as adapted so far (:func:`_unmasked_template`, its score less the margin, as an unmasked face
    meets the index) and is kept when the best match is them, accepted at ``threshold`` (the unmasked
    threshold), and it scores ``threshold + margin`` or more against their first photo (the photos
    adaptation did not add). Returns each person's photos (keys: the first and the
    check-ins kept) and the counts: ``kept`` of ``checkins``, and ``false_adds`` of ``stranger_checkins``: the unmasked
    photos of each fold's strangers (``ablation.identification``'s folds) that match someone of that
    fold's gallery, enrolled from their first photo, at ``threshold + margin`` (their face would be
    kept as that person's)."""
    gallery, probes = ablation.identification_sets(keys, 1 + checkins)
    names = [n for n in sorted(gallery) if gallery[n] in sets["orig"]]
    own: dict[str, list] = {}
    for key in sorted(keys):
        own.setdefault(key[0], []).append(key)
    kept = {n: [gallery[n]] for n in names}
    tried = 0
    for turn in range(1, checkins + 1):
        templates = [_unmasked_template(sets, kept[n]) for n in names]
        vectors, margins = np.stack([v for v, _ in templates]), np.array([m for _, m in templates])
        for n in names:
            probe = sets["orig"].get(own[n][turn])
            if probe is None:
                continue
            tried += 1
            s = vectors @ probe - margins
            best = int(s.argmax())
            if names[best] == n and s[best] >= threshold and sets["orig"][gallery[n]] @ probe >= threshold + margin:
                kept[n].append(own[n][turn])
    photos = {n: kept.get(n, [gallery[n]]) for n in sorted(gallery)}
    first = np.stack([sets["orig"][gallery[n]] for n in names])
    fold_of = ablation.person_folds(probes)   # the folds ablation.identification draws for these probes
    false_adds = strangers = 0
    for key, person in probes:
        v = sets["orig"].get(key)
        if v is None:
            continue
        columns = np.array([fold_of[n] != fold_of[person] for n in names])
        strangers += 1
        false_adds += int((first[columns] @ v).max() >= threshold + margin)
    return photos, {"checkins": tried, "kept": sum(len(p) - 1 for p in photos.values()),
                    "stranger_checkins": strangers, "false_adds": false_adds}


# (check-ins, margin over the unmasked threshold): the product's default margin is 0.1, and it keeps
# check-ins while a person has fewer than 3 photos (two check-ins for someone enrolled from one)
ADAPT_SETTINGS = ((1, 0.0), (1, 0.1), (1, 0.2), (2, 0.1))


def measure_adaptation(vectors: dict, keys: list, max_photos: int) -> tuple[dict, dict]:
    """The site's identification when each person enrolled from one photo has their next photos
    kept by gallery adaptation (:func:`adaptation`, each of :data:`ADAPT_SETTINGS` that leaves a
    probe under ``max_photos``; the margin over SFace's unmasked threshold), on the probes and
    strangers of as many enrolment photos as check-ins plus one; and the counts of kept photos and
    strangers' false adds. The threshold is SFace's engine threshold; a site's own (the index's fitted
    percentile, ``MASKNET_THRESHOLD_OFFSET``) can only be higher, keeping fewer photos, right or wrong.
    As the product, a check-in is confirmed against the person's photos that adaptation did not add
    (here the first), the best match taken in the gallery as adapted so far."""
    from recognition.engine import EngineConfig

    sets = vector_sets(vectors, keys, True)
    base = EngineConfig.for_descriptor("sface").threshold_unmasked
    out, counts = {}, {}
    for checkins, margin in ADAPT_SETTINGS:
        if 1 + checkins >= max_photos:
            continue
        photos, counted = adaptation(sets, keys, base, margin, checkins)
        label = (f"the site, 1 enrolment photo and its first {checkins} unmasked check-in(s) kept "
                 f"(margin {margin:.1f}), the probes and strangers of {1 + checkins}")
        out[label] = ablation.identification(None, keys, {}, scores=enrolment_scores(sets, keys, 1 + checkins,
                                                                                      photos),
                                             enrolled=1 + checkins)
        counts[label] = counted
    return out, counts


def table(results: dict) -> str:
    """The markdown table of :func:`main`'s results (``{"stream K: <photos>": {row: identification}}``)."""
    lines = ["| photos | masked probes matched by | gallery / probes | enrolled / strangers a fold | rank-1 "
             "| FNIR@FPIR1e-2 per fold | pooled |", "|---|---|---|---|---|---|---|"]
    for bench, rows in results.items():
        for label, r in rows.items():
            lines.append(f"| {bench} | {label} | {r['gallery']} / {r['probes']} | "
                         f"{r['known_probes_per_fold']:.0f} / {r['unknown_probes_per_fold']:.0f} | "
                         f"{100 * r['rank1']:.1f}% ± {100 * r['rank1_std']:.1f} | "
                         f"{100 * r['fnir_at_fpir_1e-2']:.1f}% ± {100 * r['fnir_at_fpir_1e-2_std']:.1f} | "
                         f"{100 * r['fnir_at_fpir_1e-2_pooled']:.1f}% |")
    return "\n".join(lines)


def mean_table(results: dict) -> str:
    """Each row's FNIR at FPIR 1e-2 (per fold and pooled) averaged over the streams of ``results``
    (keys ``stream K: <photos>``), with the lowest and highest stream's."""
    rows: dict = {}
    for bench, by_label in results.items():
        photos = bench.split(": ", 1)[1]
        for label, r in by_label.items():
            rows.setdefault((photos, label), []).append(r)
    lines = ["| photos | masked probes matched by | streams | rank-1 | FNIR@FPIR1e-2 per fold: mean (range) "
             "| pooled: mean (range) |", "|---|---|---|---|---|---|"]
    for (photos, label), rs in rows.items():
        cells = []
        for metric in ("fnir_at_fpir_1e-2", "fnir_at_fpir_1e-2_pooled"):
            v = 100 * np.array([r[metric] for r in rs])
            cells.append(f"{v.mean():.1f}% ({v.min():.1f}-{v.max():.1f})")
        rank1 = 100 * np.mean([r["rank1"] for r in rs])
        lines.append(f"| {photos} | {label} | {len(rs)} | {rank1:.1f}% | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-photos", type=int, default=5, help="photos of each person used (the first N)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes finding and embedding the faces")
    parser.add_argument("--gain-file", type=Path, default=GAIN, help="the masked faces' gain (the shipped one)")
    parser.add_argument("--stream", type=int, nargs="+", default=[0],
                        help="draw every mask anew from these random streams (0: ablation.image_rng's), each "
                             "measured apart and their mean printed below them")
    args = parser.parse_args()
    if args.max_photos < 2:
        parser.error("--max-photos must be 2 or more (a gallery photo and a probe)")
    if not ablation.SHARED.is_dir():
        sys.exit(f"{ablation.SHARED} not found: this bench needs ../shared/data")
    t0 = time.time()
    rows = [ln.split() for ln in (ablation.SHARED / "lfw" / "peopleDevTest.txt").read_text().splitlines()[1:]
            if ln.strip()]
    everyone = people_keys([(n, int(c)) for n, c in rows], args.max_photos)
    pairs = pair_keys(ablation.devtest_pairs("DevTest"))
    keys = sorted(set(everyone) | set(pairs))
    results: dict = {}
    lost: dict = {}
    adapted: dict = {}
    args.stream = list(dict.fromkeys(args.stream))   # each stream once
    for stream in args.stream:
        vectors = all_vectors(keys, args.gain_file, args.jobs, stream)
        results[f"stream {stream}: every DevTest person, first {args.max_photos} photos"] = measure(vectors, everyone)
        results[f"stream {stream}: pairsDevTest.txt's photos (the pair-by-pair bench's)"] = measure(vectors, pairs)
        counts = tuple(n for n in (2, 3) if n < args.max_photos)   # each needs a probe past the enrolled photos
        if counts:
            results[f"stream {stream}: every DevTest person, several enrolment photos"] = measure_enrolment(
                vectors, everyone, counts)
        if args.max_photos > 2:
            rows, counted = measure_adaptation(vectors, everyone, args.max_photos)
            results[f"stream {stream}: every DevTest person, gallery adaptation"] = rows
            adapted[stream] = counted
            for label, c in counted.items():
                print(f"stream {stream}, {label}: kept {c['kept']} of {c['checkins']} check-ins; strangers' "
                      f"unmasked photos kept as someone's: {c['false_adds']} of {c['stranger_checkins']}")
        lost[stream] = {"photos_without_a_face": sum(1 for v in vectors.values() if v is None),
                        "masked_copies_lost_by_the_detector": sum(1 for v in vectors.values() if v and v["mtf_lost"])}
    meta = {"seconds": round(time.time() - t0, 1), "max_photos": args.max_photos, "streams": args.stream,
            "photos": len(keys), "faces_lost": lost,
            "adaptation": adapted, "gain_file": str(args.gain_file), "provenance": provenance()}
    streams = "" if args.stream == [0] else "-stream" + "-".join(map(str, args.stream))
    photos = "" if args.max_photos == 5 else f"-{args.max_photos}photos"
    # another gain (a candidate) writes apart from the shipped one's figures, named by its digest
    other = args.gain_file.resolve() != GAIN.resolve()
    gain = f"-gain{hashlib.sha256(args.gain_file.read_bytes()).hexdigest()[:8]}" if other else ""
    write_results(f"people{photos}{gain}{streams}", meta, results)
    print(table(results))
    if len(args.stream) > 1:
        print("\n" + mean_table(results))
    print(f"\n{meta['seconds']:.0f} s")


if __name__ == "__main__":
    main()
