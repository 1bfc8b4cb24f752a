"""Enrolment photos turned to other poses or seen in other light, and a decision by the margin over
the second-best person (issue 3; measured, not built): levers on the one-photo open-set
identification of masked probes.

- **Turned views**: each enrolment photo also seen with its face turned (FaceMesh's 3-D points rotated
  about the face's centre by a yaw or a pitch, the photo warped by a thin-plate spline from the mesh's
  points to the rotated ones, :func:`turn`), each view enrolled as the product enrols a photo (its
  embedding and its averaged synthetic-mask template, ``gallery.enroll_templates``); the views averaged
  into the photo's vectors (as the mirror TTA averages the mirror image), into the template alone, or
  each kept as a template of its own (the best of them). ``--views photometric``: the photo blurred,
  halved in scale and back, darkened and lightened (gamma 1.4, 0.7) instead, the kiosk camera's
  usual faults (:func:`photometric`).
- **Margin**: a probe decided by ``best - m x second best`` over the gallery's people instead of its
  best score alone (a stranger tends to come close to several people, an enrolled person to one).

Measured on the product's whole path (the engine's detection, alignment, mask decision, SFace with the
masked faces' gain, enrolment templates), on the people, gallery, probes and folds of
``bench/ablation.py``'s identification (DevTest; each person's first photo enrolled, the other
photos the probes, wearing MaskTheFace masks the product never saw; one-photo people are strangers
only). Every face found is used (the quality gate is not applied); a probe or photo without a face
scores nothing (a miss for FNIR; a faceless probe's rank-1 label is the fold gallery's first person,
right by chance about once in 325).

Usage: ``python bench/gallery_views.py [--views turned|photometric] [--view-stream K]`` (about 17
minutes on 2 cores the first time, 13 once the probes' vectors are cached in ``var/bench/gallery_views``,
seconds when the views' are too). ``--view-stream K`` draws the views' synthetic masks anew (a
stream of their own), to see how much of a row's difference from the site's is the renderings'.
Prints the table and writes ``bench/results/gallery-views[-photometric][-streamK].json``.
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
from provenance import provenance, write_results  # noqa: E402

from recognition.engine import EngineConfig, NoFaceFound, load_engine  # noqa: E402
from recognition.engine.embed import l2_normalise  # noqa: E402
from recognition.engine.gallery import enroll_templates  # noqa: E402
from recognition.engine.masks import apply_mask, load_templates  # noqa: E402

WORK = REPO / "var" / "bench" / "gallery_views"
# (yaw, pitch) in degrees of each turned view: two yaws, then two pitches
ANGLES = ((-15.0, 0.0), (15.0, 0.0), (0.0, -10.0), (0.0, 10.0))
TURN_STEP, TURN_SMOOTHING = 4, 1.0   # the warp's coarse grid (pixels) and the spline's smoothing
BLUR_SIGMA, SCALE, GAMMAS = 1.2, 0.5, (1.4, 0.7)   # the photometric views
# every setting a kind of view's vectors depend on (its cache key)
VIEW_SETTINGS = {"turned": (ANGLES, TURN_STEP, TURN_SMOOTHING, "every other mesh point"),
                 "photometric": (BLUR_SIGMA, SCALE, GAMMAS)}
MARGINS = (0.1, 0.2, 0.3, 0.5)


def thin_plate(dst: np.ndarray, src: np.ndarray, at: np.ndarray, smoothing: float = TURN_SMOOTHING) -> np.ndarray:
    """The thin-plate spline that takes the points ``dst`` to ``src`` (``Nx2`` each), evaluated at
    ``at`` (``Mx2``): kernel ``r^2 log r``, an affine part, ``smoothing`` added to the kernel's diagonal."""
    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        r = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
        return np.where(r > 0, r * r * np.log(np.maximum(r, 1e-12)), 0.0)

    n = len(dst)
    affine = np.hstack([np.ones((n, 1)), dst])
    system = np.zeros((n + 3, n + 3))
    system[:n, :n] = kernel(dst, dst) + smoothing * np.eye(n)
    system[:n, n:], system[n:, :n] = affine, affine.T
    coef = np.linalg.solve(system, np.vstack([src, np.zeros((3, 2))]))
    return kernel(at, dst) @ coef[:n] + np.hstack([np.ones((len(at), 1)), at]) @ coef[n:]


def turn(image: np.ndarray, landmarks: np.ndarray, yaw: float, pitch: float, step: int = TURN_STEP) -> np.ndarray:
    """``image`` with the face of FaceMesh ``landmarks`` (``468x3``, image pixels, depth in the same
    scale) turned by ``yaw`` and ``pitch`` degrees about the points' centre: the points are rotated in
    3-D and the image warped by a thin-plate spline from every other point's place to its rotated
    place (the picture's border held still), computed every ``step`` pixels and interpolated."""
    h, w = image.shape[:2]
    p = np.asarray(landmarks, np.float64)
    centre = p.mean(axis=0)
    a, b = np.radians(yaw), np.radians(pitch)
    about_y = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    about_x = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    q = (p - centre) @ (about_x @ about_y).T + centre
    border = np.array([[x, y] for x in np.linspace(0, w - 1, 6) for y in (0, h - 1)]
                      + [[x, y] for y in np.linspace(0, h - 1, 6)[1:-1] for x in (0, w - 1)])
    # the spline's displacement at the centre of each step x step block, so that resizing the coarse
    # field by ``step`` (cv2's pixel-centre convention) puts every value back on the pixel it was
    # computed for (the border's blocks are clamped: a displacement, near zero there, not a place)
    rows, cols = -(-h // step), -(-w // step)
    gy, gx = np.mgrid[0:rows, 0:cols] * step + (step - 1) / 2
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    # backward map: for each output pixel (a rotated place), where in the photo it comes from
    shift = thin_plate(np.vstack([q[::2, :2], border]), np.vstack([p[::2, :2], border]), grid) - grid
    shift = shift.reshape(rows, cols, 2).astype(np.float32)
    py, px = np.mgrid[0:h, 0:w].astype(np.float32)
    mx, my = (cv2.resize(shift[..., i], (cols * step, rows * step), interpolation=cv2.INTER_LINEAR)[:h, :w] + base
              for i, base in ((0, px), (1, py)))
    return cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def turned(image: np.ndarray, face) -> list[np.ndarray]:
    """The photo's face turned by each of :data:`ANGLES` (none without landmarks)."""
    return [turn(image, face.landmarks, yaw, pitch) for yaw, pitch in ANGLES] if face.landmarks is not None else []


def photometric(image: np.ndarray, face) -> list[np.ndarray]:
    """The photo blurred (Gaussian, :data:`BLUR_SIGMA` px), scaled by :data:`SCALE` and back, and
    through each of :data:`GAMMAS` (above 1 darker, below lighter)."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (round(w * SCALE), round(h * SCALE)), interpolation=cv2.INTER_AREA)

    def gamma(g: float) -> np.ndarray:
        return cv2.LUT(image, np.clip((np.arange(256) / 255.0) ** g * 255, 0, 255).astype(np.uint8))

    return [cv2.GaussianBlur(image, (0, 0), BLUR_SIGMA), cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR),
            *(gamma(g) for g in GAMMAS)]


VIEWS = {"turned": turned, "photometric": photometric}


def gallery_vectors(engine, key, rng: np.random.Generator, views: str = "turned",
                    view_rng: np.random.Generator | None = None) -> dict | None:
    """An enrolment photo's ``photo`` and ``template`` vectors as the product stores them, and each
    of its :data:`VIEWS` ``views``' (``views``: one ``(photo, template)`` each, ``None`` where no face
    is found); ``None`` without a face. The views' synthetic masks are drawn from ``view_rng``, or go
    on drawing from ``rng`` without it."""
    image = ablation.read_image(*key)
    try:
        face = engine.analyze(image, max_faces=3)[0]
    except NoFaceFound:
        return None
    photo, template = enroll_templates(engine, face, rng).vectors
    out = []
    for view in VIEWS[views](image, face):
        try:
            seen = engine.analyze(view, max_faces=3)[0]
        except NoFaceFound:
            out.append(None)
            continue
        out.append(tuple(enroll_templates(engine, seen, rng if view_rng is None else view_rng).vectors))
    return {"photo": photo, "template": template, "views": out}


def probe_vector(engine, key, rng: np.random.Generator, templates: list) -> np.ndarray | None:
    """A probe photo wearing a MaskTheFace mask, embedded as the kiosk embeds a frame (``None``
    without a face)."""
    image = ablation.read_image(*key)
    try:
        face = engine.analyze(image, max_faces=3, embed=False)[0]
        if face.landmarks is not None:
            image = apply_mask(image, face.landmarks, rng, templates)
        return engine.analyze(image, max_faces=3)[0].embedding
    except NoFaceFound:
        return None


def vectors(engine, keys, views: str = "turned", view_stream: int | None = None) -> dict:
    """``{("g", key): gallery_vectors, ("p", key): probe_vector}`` for the identification's gallery
    (with ``views``; their synthetic masks drawn from a stream of their own, ``view_stream``, or going
    on from the photo's) and probes (each cached, the probes shared by every kind of view)."""
    gallery, probes = ablation.identification_sets(keys)
    out: dict = {}
    stream = () if view_stream is None else (("view stream", view_stream),)
    path = ablation.cache_file(engine, f"gallery-{views}.pkl", VIEW_SETTINGS[views], *stream, folder=WORK)
    if path.exists():
        out.update(pickle.loads(path.read_bytes()))
    else:
        for n, key in enumerate(sorted(gallery.values())):
            own = None if view_stream is None else np.random.default_rng([n, 11, view_stream])
            out[("g", key)] = gallery_vectors(engine, key, np.random.default_rng([n, 11]), views, own)
            if n % 50 == 0:
                print(f"  gallery {n}/{len(gallery)}", file=sys.stderr, flush=True)
        WORK.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(out))
    path = ablation.cache_file(engine, "probes.pkl", folder=WORK)
    if path.exists():
        out.update(pickle.loads(path.read_bytes()))
        return out
    templates = load_templates(ablation.SHARED / "masks")
    found = {}
    for n, (key, _) in enumerate(probes):
        found[("p", key)] = probe_vector(engine, key, np.random.default_rng([n, 13]), templates)
        if n % 200 == 0:
            print(f"  probes {n}/{len(probes)}", file=sys.stderr, flush=True)
    path.write_bytes(pickle.dumps(found))
    return {**out, **found}


def averaged(own: np.ndarray, views: list[np.ndarray], weight: float = 1.0) -> np.ndarray:
    """``own`` and the views' vectors averaged (each view weighing ``weight`` of ``own``), normalised."""
    return l2_normalise(own + weight * sum(views, np.zeros_like(own)))


def found(views: list) -> list:
    """The views in which a face was found."""
    return [v for v in views if v is not None]


# how a masked probe meets an enrolled person: (photo, template, [(view photo, view template) or None
# where the view has no face], in VIEWS' order) -> the vectors it is scored against, the best counting
# ("{views}" in a row's name is the kind of view)
SITE = "the site: photo and averaged synthetic-mask template"
FORMS = {
    SITE: lambda ph, tm, vs: [ph, tm],
    "{views} views averaged into photo and template": lambda ph, tm, vs: [
        averaged(ph, [v[0] for v in found(vs)]), averaged(tm, [v[1] for v in found(vs)])],
    "{views} views averaged into the template only": lambda ph, tm, vs: [
        ph, averaged(tm, [v[1] for v in found(vs)])],
    "{views} views averaged at half weight": lambda ph, tm, vs: [
        averaged(ph, [v[0] for v in found(vs)], 0.5), averaged(tm, [v[1] for v in found(vs)], 0.5)],
    "{views} views, each a template of its own (the best of all)": lambda ph, tm, vs: [
        ph, tm] + [x for v in found(vs) for x in v],
}
# turned views only: the first two are the yaws
TURNED_FORMS = {
    "the two yaw views averaged into photo and template": lambda ph, tm, vs: [
        averaged(ph, [v[0] for v in found(vs[:2])]), averaged(tm, [v[1] for v in found(vs[:2])])],
}


def scores(data: dict, keys, form) -> np.ndarray:
    """Probes x gallery scores (``ablation.identification_sets``' order) under a :data:`FORMS` form."""
    gallery, probes = ablation.identification_sets(keys)
    dim = next(v for k, v in data.items() if k[0] == "p" and v is not None).shape[0]
    probe = np.stack([data[("p", k)] if data[("p", k)] is not None else np.zeros(dim, np.float32)
                      for k, _ in probes])
    columns = []
    for person in sorted(gallery):
        g = data[("g", gallery[person])]
        if g is None:
            columns.append(np.full(len(probe), -1.0))
            continue
        columns.append((probe @ np.stack(form(g["photo"], g["template"], g["views"])).T).max(axis=1))
    return np.stack(columns, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", choices=sorted(VIEWS), default="turned",
                        help="the enrolment photo's extra views: its face turned (default) or photometric changes")
    parser.add_argument("--view-stream", type=int, default=None,
                        help="draw the views' synthetic masks from a random stream of their own (K), not on from "
                             "the photo's: the photo's row unchanged, the views' renderings redrawn")
    args = parser.parse_args()
    if not ablation.SHARED.is_dir():
        sys.exit(f"{ablation.SHARED} not found: this bench needs ../shared/data")
    t0 = time.time()
    engine = load_engine(Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models")),
                         EngineConfig.for_descriptor("sface"))
    pairs = ablation.devtest_pairs()
    keys = sorted({p[0] for p in pairs} | {p[1] for p in pairs})
    data = vectors(engine, keys, args.views, args.view_stream)
    forms = {**FORMS, **(TURNED_FORMS if args.views == "turned" else {})}
    results = {name.format(views=args.views): ablation.identification(None, keys, {}, scores=scores(data, keys, form))
               for name, form in forms.items()}
    site = scores(data, keys, FORMS[SITE])
    for m in MARGINS:
        results[f"the site, decided by best - {m:g} x second best"] = ablation.identification(
            None, keys, {}, scores=site, margin=m)
    meta = {"seconds": round(time.time() - t0, 1), "views": args.views, "view_settings": VIEW_SETTINGS[args.views],
            "view_stream": args.view_stream, "margins": MARGINS,
            "gallery_without_face": sum(1 for k, v in data.items() if k[0] == "g" and v is None),
            "probes_without_face": sum(1 for k, v in data.items() if k[0] == "p" and v is None),
            "provenance": provenance(engine.config)}
    name = "gallery-views" + ("" if args.views == "turned" else f"-{args.views}")
    write_results(name + ("" if args.view_stream is None else f"-stream{args.view_stream}"), meta, results)
    print("| row | rank-1 | FNIR at FPIR 1e-2 per fold | pooled |\n|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['rank1'] * 100:.1f}% ± {r['rank1_std'] * 100:.1f} | "
              f"{r['fnir_at_fpir_1e-2'] * 100:.1f}% ± {r['fnir_at_fpir_1e-2_std'] * 100:.1f} | "
              f"{r['fnir_at_fpir_1e-2_pooled'] * 100:.1f}% |")
    print(f"\n{meta['seconds']:.0f} s; without a face: {meta['gallery_without_face']} enrolment photos, "
          f"{meta['probes_without_face']} probes")


if __name__ == "__main__":
    main()
