"""The gallery index: add, remove, search and persistence."""

from __future__ import annotations

import numpy as np
import pytest

from recognition.engine.errors import EngineError
from recognition.engine.index import Index


def unit(rng, n, d):
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_search_finds_the_nearest_identity():
    rng = np.random.default_rng(0)
    index = Index(64)
    people = {f"p{i}": unit(rng, 3, 64) for i in range(20)}
    for label, vecs in people.items():
        index.add(label, vecs)
    probe = people["p7"][1] + 0.05 * unit(rng, 1, 64)[0]
    best = index.search(probe, k=3)
    assert best[0].label == "p7" and best[0].score > 0.9
    assert len({m.label for m in best}) == 3  # one match per identity


def test_remove_and_kinds():
    rng = np.random.default_rng(1)
    index = Index(8)
    index.add("a", unit(rng, 2, 8), kinds=[0, 1])
    index.add("b", unit(rng, 1, 8))
    assert len(index) == 3 and index.identities == {"a", "b"}
    q = index.vectors[1]
    assert index.search(q, kinds=(1,))[0].label == "a"
    assert [m.label for m in index.search(q, kinds=(1,))] == ["a"]
    assert index.remove("a") == 2
    assert index.identities == {"b"} and index.search(q)[0].label == "b"


def test_keep_labels_drops_everyone_else_with_their_kinds_and_margins():
    """A rebuild's switch drops the people deactivated or erased while it ran in one pass."""
    rng = np.random.default_rng(3)
    index = Index(8)
    for i in range(6):
        index.add(f"p{i}", unit(rng, 2, 8), kinds=[0, 1], margins=[0.0, 0.01 * i])
    kept = index.vectors[[2, 3, 8, 9]].copy()
    assert index.keep_labels({"p1", "p4", "nobody"}) == 8
    assert index.identities == {"p1", "p4"} and index.labels.tolist() == ["p1", "p1", "p4", "p4"]
    assert np.array_equal(index.vectors, kept) and index.kinds.tolist() == [0, 1, 0, 1]
    assert np.allclose(index.margins, [0.0, 0.01, 0.0, 0.04])
    assert index.keep_labels(set()) == 4 and len(index) == 0


def test_label_score_is_what_search_gives_that_label_found_or_not():
    """The kiosk scores each frame against the person whose welcome stands, their best match or
    not: the same score a search that found them gives (kinds, margins), after a removal too."""
    rng = np.random.default_rng(2)
    index = Index(16)
    for i in range(30):
        index.add(f"p{i}", unit(rng, 3, 16), kinds=[0, 1, 1], margins=[0.0, 0.01, 0.02])
    probe = unit(rng, 1, 16)[0]
    for kinds in (None, (0,), (1,)):
        found = {m.label: m.score for m in index.search(probe, k=30, kinds=kinds)}
        assert all(abs(index.label_score(probe, label, kinds) - score) < 1e-6 for label, score in found.items())
    assert index.label_score(probe, "p3") > index.search(probe, k=30)[-1].score - 1e-6
    assert index.label_score(probe, "nobody") is None and index.label_score(probe, "p3", kinds=(2,)) is None
    assert index.holds("p3") and not index.holds("nobody")
    index.remove("p3")
    assert index.label_score(probe, "p3") is None    # asked before: not answered from the old rows
    assert not index.holds("p3") and index.holds("p4")
    assert abs(index.label_score(probe, "p4") - {m.label: m.score for m in index.search(probe, k=29)}["p4"]) < 1e-6


def test_persist_roundtrip(tmp_path):
    rng = np.random.default_rng(2)
    index = Index(16)
    index.add("42", unit(rng, 4, 16), kinds=[0, 0, 1, 1])
    index.save(tmp_path / "idx.npz")
    again = Index.load(tmp_path / "idx.npz")
    assert np.allclose(again.vectors, index.vectors)
    assert again.labels.tolist() == index.labels.tolist() and again.kinds.tolist() == [0, 0, 1, 1]
    assert not list(tmp_path.glob("*.tmp"))


def test_wrong_dimension_and_bad_file(tmp_path):
    with pytest.raises(EngineError):
        Index(8).add("x", np.ones((1, 9)))
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(EngineError):
        Index.load(tmp_path / "bad.npz")
    index = Index(8)
    index.add("x", np.ones((1, 8)))
    for probe in (np.ones(9), np.ones((1, 8))):  # a vector of another recognizer version, a batch
        with pytest.raises(EngineError, match="dimension 8"):
            index.search(probe)
        with pytest.raises(EngineError, match="dimension 8"):
            index.scores(probe)


def test_load_refuses_arrays_that_disagree(tmp_path):
    rng = np.random.default_rng(3)
    index = Index(16)
    index.add("a", unit(rng, 3, 16), margins=[0.0, 0.01, 0.02])
    index.save(tmp_path / "ok.npz")
    assert Index.load(tmp_path / "ok.npz").margins.tolist() == pytest.approx([0.0, 0.01, 0.02])
    fields = {"vectors": index.vectors, "labels": index.labels.astype(str), "kinds": index.kinds,
              "dim": np.array(16), "margins": index.margins}
    for name, bad in (("margins", index.margins[:2]), ("kinds", index.kinds[:1]),
                      ("labels", index.labels.astype(str)[:2]), ("dim", np.array(8))):
        np.savez(tmp_path / f"bad-{name}.npz", **{**fields, name: bad})
        with pytest.raises(EngineError, match="disagree"):
            Index.load(tmp_path / f"bad-{name}.npz")


def test_empty_index_search():
    assert Index(4).search(np.ones(4)) == []


def test_large_index_two_stage_search_matches_exhaustive(tmp_path):
    from recognition.engine import index as index_mod

    rng = np.random.default_rng(3)
    dim, n = index_mod.COARSE_DIM + 64, index_mod.COARSE_MIN + 1000
    index = Index(dim)
    index.vectors = unit(rng, n, dim)
    index.labels = np.array([str(i // 3) for i in range(n)], dtype=object)
    index.kinds = np.tile(np.array([0, 1, 1], np.int8), n // 3 + 1)[:n]
    for row in (5, 999, n - 1):
        probe = index.vectors[row] + 0.5 * unit(rng, 1, dim)[0]
        for kinds in (None, (0,)):
            s = index.scores(probe, kinds)
            best = int(np.argmax(s))
            found = index.search(probe, k=2, kinds=kinds)
            assert found[0].label == index.labels[best] and abs(found[0].score - float(s[best])) < 1e-5
            assert len(found) == 2
    index.save(tmp_path / "big.npz")
    again = Index.load(tmp_path / "big.npz")
    assert again._coarse is not None  # built at load, not on the first kiosk frame
    assert again.search(index.vectors[42], k=1)[0].label == "14"


def test_margins_are_subtracted_persisted_and_kept_aligned(tmp_path):
    rng = np.random.default_rng(5)
    index = Index(16)
    a, b = unit(rng, 1, 16), unit(rng, 1, 16)
    index.add("plain", a)
    assert index.margins is None                       # no margins until a template has one
    index.add("mean", a, margins=[0.1])
    index.add("other", b)
    assert index.margins.tolist() == pytest.approx([0.0, 0.1, 0.0])
    found = index.search(a[0], k=2)
    assert [m.label for m in found] == ["plain", "mean"]
    assert found[1].score == pytest.approx(0.9, abs=1e-5)
    assert index.scores(a[0])[1] == pytest.approx(0.9, abs=1e-5)
    index.save(tmp_path / "m.npz")
    again = Index.load(tmp_path / "m.npz")
    assert again.margins.tolist() == pytest.approx([0.0, 0.1, 0.0])
    assert again.remove("plain") == 1 and again.margins.tolist() == pytest.approx([0.1, 0.0])
    assert again.search(a[0], k=1)[0].score == pytest.approx(0.9, abs=1e-5)
    plain = Index(16)
    plain.add("x", a)
    plain.save(tmp_path / "old.npz")                    # an index written without margins
    assert Index.load(tmp_path / "old.npz").margins is None


def test_two_stage_search_applies_margins():
    from recognition.engine import index as index_mod

    rng = np.random.default_rng(4)
    dim, n = index_mod.COARSE_DIM + 64, index_mod.COARSE_MIN + 10
    index = Index(dim)
    index.add("bulk", unit(rng, n, dim))
    target = index.vectors[7]
    index.add("twin", target[None], margins=[0.5])     # identical, but half a point of margin
    found = index.search(target, k=2)
    assert found[0].label == "bulk" and found[0].score == pytest.approx(1.0, abs=1e-4)
    assert found[1].label == "twin" and found[1].score == pytest.approx(0.5, abs=1e-4)


def test_person_templates_average_each_kind_by_quality():
    from recognition.engine.gallery import AGGREGATE_MARGIN, Templates, person_templates

    rng = np.random.default_rng(6)
    sharp = Templates(unit(rng, 2, 16), np.array([0, 1], np.int8))
    blurred = Templates(unit(rng, 2, 16), np.array([0, 1], np.int8))
    masked_photo = Templates(unit(rng, 1, 16), np.array([1], np.int8))   # enrolled wearing a mask
    one = person_templates([sharp], [0.9])
    assert np.array_equal(one.vectors, sharp.vectors) and not one.margins.any()
    two = person_templates([sharp, blurred], [0.9, 0.1])
    assert two.kinds.tolist() == [0, 1] and two.margins.tolist() == pytest.approx([AGGREGATE_MARGIN] * 2)
    assert np.allclose(np.linalg.norm(two.vectors, axis=1), 1.0)
    assert two.vectors[0] @ sharp.vectors[0] > two.vectors[0] @ blurred.vectors[0]
    expected = 0.9 * sharp.vectors[0] + 0.1 * blurred.vectors[0]
    assert two.vectors[0] == pytest.approx(expected / np.linalg.norm(expected), abs=1e-6)
    # a photo enrolled wearing a real mask keeps its own template: never blended with synthetic masks
    mixed = person_templates([sharp, masked_photo], [0.9, None])
    assert mixed.kinds.tolist() == [1, 0, 1] and not mixed.margins.any()
    assert np.array_equal(mixed.vectors[0], masked_photo.vectors[0])
    assert np.array_equal(mixed.vectors[1:], sharp.vectors)
    three = person_templates([sharp, masked_photo, blurred], [0.9, 0.5, 0.1])
    assert three.kinds.tolist() == [1, 0, 1] and three.margins.tolist() == pytest.approx([0.0] + [AGGREGATE_MARGIN] * 2)
    assert person_templates([], []).vectors.shape[0] == 0


def test_the_margin_follows_how_much_the_photos_differ():
    from recognition.engine.gallery import AGGREGATE_MARGIN, AGGREGATE_SPREAD_FULL, Templates, person_templates

    rng = np.random.default_rng(8)
    face = unit(rng, 1, 64)[0]

    def photos(noise: float) -> list[Templates]:
        rows = face + noise * rng.normal(size=(3, 64)) / 8.0
        return [Templates(r[None] / np.linalg.norm(r), np.array([0], np.int8)) for r in rows]

    burst = person_templates(photos(0.05), [0.9] * 3)      # a webcam burst: nearly the same frame
    assert 0.0 < burst.margins[0] < 0.1 * AGGREGATE_MARGIN
    diverse = person_templates(photos(1.0), [0.9] * 3)     # photos of different days
    assert diverse.margins[0] == pytest.approx(AGGREGATE_MARGIN)
    v = np.stack([t.vectors[0] for t in photos(0.2)])
    spread = 1.0 - (float((v @ v.T).sum()) - 3) / 6
    assert spread < AGGREGATE_SPREAD_FULL
    middle = person_templates([Templates(r[None], np.array([0], np.int8)) for r in v], [0.9] * 3)
    assert middle.margins[0] == pytest.approx(AGGREGATE_MARGIN * spread / AGGREGATE_SPREAD_FULL, rel=1e-4)


def test_a_damaged_or_forged_index_file_is_refused(tmp_path):
    """Templates are unit vectors: a file with others (vectors x 5 scored 10.0, a match for anyone)
    or a truncated file is refused with the engine's error, not a crash or a false accept."""
    good = Index(4)
    good.add("1", np.eye(4, dtype=np.float32)[:1])
    good.save(tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz") as data:
        arrays = dict(data)
    np.savez(tmp_path / "forged.npz", **{**arrays, "vectors": arrays["vectors"] * 5})
    (tmp_path / "cut.npz").write_bytes((tmp_path / "good.npz").read_bytes()[:100])
    for name in ("forged.npz", "cut.npz"):
        with pytest.raises(EngineError):
            Index.load(tmp_path / name)
    assert len(Index.load(tmp_path / "good.npz")) == 1


def test_a_forged_margin_or_a_shapeless_array_is_refused(tmp_path):
    """A negative margin raised every score against its template (a probe at right angles to it
    scored 1.5, a match at any threshold); labels without a dimension failed outside the checks."""
    good = Index(4)
    good.add("1", np.eye(4, dtype=np.float32)[:2], kinds=[0, 1], margins=[0.0, 0.02])
    good.save(tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz") as data:
        arrays = dict(data)
    np.savez(tmp_path / "margin.npz", **{**arrays, "margins": np.array([-1.5, 0.0], np.float32)})
    np.savez(tmp_path / "nan.npz", **{**arrays, "margins": np.array([np.nan, 0.0], np.float32)})
    np.savez(tmp_path / "labels.npz", **{**arrays, "labels": np.array("1")})
    for name in ("margin.npz", "nan.npz", "labels.npz"):
        with pytest.raises(EngineError):
            Index.load(tmp_path / name)
    assert len(Index.load(tmp_path / "good.npz")) == 2


def test_any_damaged_byte_of_an_index_file_is_read_or_refused_never_a_crash(tmp_path):
    """Every single byte of a saved index changed in turn: the load either succeeds (the byte was
    in a label, say) or raises the engine's error; a damaged zip directory (NotImplementedError,
    RuntimeError) or .npy header (tokenize.TokenError) escaped as other exceptions, and an erasure
    that re-read the file rolled back on them."""
    good = Index(4)
    good.add("1", np.eye(4, dtype=np.float32)[:2], kinds=[0, 1], margins=[0.0, 0.02])
    good.save(tmp_path / "good.npz")
    data = (tmp_path / "good.npz").read_bytes()
    refused = 0
    for i in range(len(data)):
        for flip in (0xFF, 0x08):
            damaged = bytearray(data)
            damaged[i] ^= flip
            try:
                Index.load(tmp_path / "damaged.npz", content=bytes(damaged))
            except EngineError:
                refused += 1
    assert refused > len(data)          # most damage is noticed


def test_a_truncated_mask_head_is_reported_as_missing_not_a_crash(tmp_path):
    from recognition.engine.errors import ModelsMissing
    from recognition.engine.maskclf import DEFAULT_PATH, MaskClassifier

    cut = tmp_path / "mask_classifier.npz"
    cut.write_bytes(DEFAULT_PATH.read_bytes()[:200])
    with pytest.raises(ModelsMissing):
        MaskClassifier.load(cut)


def test_templates_need_as_many_kinds_and_margins():
    """A short kinds array would broadcast in the search's kind filter instead of failing."""
    index = Index(4)
    with pytest.raises(EngineError):
        index.add("a", np.eye(4)[:2], kinds=[0])
    with pytest.raises(EngineError):
        index.add("a", np.eye(4)[:2], kinds=[0, 1], margins=[0.1])
    index.add("a", np.eye(4)[:2], kinds=[0, 1], margins=[0.1, 0.0])
    assert len(index) == 2


def test_files_written_whole_keep_templates_private_and_models_readable(tmp_path):
    """Index versions (templates) are the owner's alone; a trained model or a results file is as
    readable as a plain write makes it (they came out 0600: a model trained by one user could not be
    read by the site running as another)."""
    import os
    import stat

    from recognition.engine.files import savez_atomic, write_text_atomic

    old = os.umask(0o022)
    try:
        savez_atomic(tmp_path / "index.npz", v=np.zeros(2))
        savez_atomic(tmp_path / "model.npz", shared=True, v=np.zeros(2))
        write_text_atomic(tmp_path / "metrics.json", "{}")
        savez_atomic(tmp_path / "index" / "v1.npz", v=np.zeros(2))          # a folder made for it: private
        savez_atomic(tmp_path / "models" / "m.npz", shared=True, v=np.zeros(2))
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"index.npz": 0o600, "model.npz": 0o644, "metrics.json": 0o644, "index": 0o700, "models": 0o755}
