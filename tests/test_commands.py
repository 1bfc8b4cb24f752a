"""The evaluation commands' contracts (options and JSON keys) on small generated data sets."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def people_dir(tmp_path_factory, engine, astronaut_bgr, registry_photos):
    """A tiny LFW-style tree: ``Name/Name_000N.jpg``, two photos each of a few people.

    People are the astronaut and the faces of the insightface group photo; a person's
    second photo is a rescaled, mirrored, re-lit copy (a different "shot" of the same face).
    """
    root = tmp_path_factory.mktemp("people")
    crops = {"Astronaut": astronaut_bgr}
    for i, f in enumerate(engine.analyze(registry_photos["t1.jpg"])[:4]):
        x1, y1, x2, y2 = (int(v) for v in f.box)
        w = x2 - x1
        crop = registry_photos["t1.jpg"][max(0, y1 - w // 2): y2 + w // 2, max(0, x1 - w // 2): x2 + w // 2]
        crops[f"Person{i}"] = cv2.resize(crop, (250, 250))
    for name, img in crops.items():
        (root / name).mkdir()
        cv2.imwrite(str(root / name / f"{name}_0001.jpg"), img)
        other = cv2.convertScaleAbs(cv2.flip(cv2.resize(img, (220, 220)), 1), alpha=1.1, beta=8)
        cv2.imwrite(str(root / name / f"{name}_0002.png"), other)
    return root


def test_evaluate_pairs_contract(people_dir, tmp_path):
    names = sorted(p.name for p in people_dir.iterdir())
    same = [f"{n}\t1\t2" for n in names]
    diff = [f"{a}\t1\t{b}\t2" for a, b in zip(names, names[1:] + names[:1], strict=True)]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(same + diff) + "\n")  # no header line: allowed
    masked = tmp_path / "masked.txt"
    masked.write_text(f"{names[0]}/{names[0]}_0002.png\n")
    out = tmp_path / "out.json"
    call_command("evaluate_pairs", images=str(people_dir), pairs=str(pairs), masked_list=str(masked),
                 json=str(out))
    r = json.loads(out.read_text())
    for key in ("accuracy", "accuracy_std", "auc", "tar_at_far_1e-2", "tar_at_far_1e-3", "n_pairs",
                "failed_images"):
        assert key in r
    assert r["n_pairs"] == 10 and r["failed_images"] == 0
    assert r["auc"] > 0.9
    assert set(r["subsets"]) == {"masked_unmasked", "masked_masked", "unmasked_unmasked"}
    assert r["subsets"]["masked_unmasked"]["n"] == 2 and r["subsets"]["masked_masked"]["n"] == 0


def test_evaluate_pairs_can_measure_the_mirror_off(people_dir, tmp_path):
    """--no-mirror (the ablation's plain row) embeds without the mirror image; the site never does."""
    from recognition.management.commands._common import engine_from_settings

    assert engine_from_settings().config.flip_tta
    plain = engine_from_settings(flip_tta=False)
    assert not plain.config.flip_tta and plain is not engine_from_settings()
    assert plain.config.with_(flip_tta=True) == engine_from_settings().config  # nothing else changed
    names = sorted(p.name for p in people_dir.iterdir())
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join([f"{n}\t1\t2" for n in names]
                               + [f"{a}\t1\t{b}\t2" for a, b in zip(names, names[1:] + names[:1], strict=True)]) + "\n")
    for flag in (False, True):
        out = tmp_path / f"out-{flag}.json"
        call_command("evaluate_pairs", images=str(people_dir), pairs=str(pairs), json=str(out), no_mirror=flag)
        r = json.loads(out.read_text())
        assert r["mirror"] is not flag and r["n_pairs"] == 10 and r["auc"] > 0.9


def test_evaluate_identification_contract(people_dir, tmp_path):
    gallery, probes = tmp_path / "gallery", tmp_path / "probes"
    names = sorted(p.name for p in people_dir.iterdir())
    for i, n in enumerate(names):
        (probes / n).mkdir(parents=True)   # (the second shots: too small for the kiosk, some of them)
        (probes / n / "p.jpg").write_bytes((people_dir / n / f"{n}_0001.jpg").read_bytes())
        if i < len(names) - 1:  # the last person is not enrolled: an unknown probe
            (gallery / n).mkdir(parents=True)
            (gallery / n / "g.jpg").write_bytes((people_dir / n / f"{n}_0001.jpg").read_bytes())
    out = tmp_path / "id.json"
    call_command("evaluate_identification", gallery=str(gallery), probes=str(probes), json=str(out))
    r = json.loads(out.read_text())
    for key in ("rank1", "fnir_at_fpir_1e-2", "fpir_at_threshold", "fnir_at_threshold", "n_gallery_people",
                "n_known_probes", "n_unknown_probes"):
        assert key in r
    # a gallery photo the product would refuse (one crop here is turned too far: "pose") enrols
    # nobody, and that person's probe is then a stranger's
    assert r["n_gallery_people"] + r["failed_gallery_images"] == len(names) - 1 and r["failed_gallery_images"] <= 1
    assert r["n_known_probes"] == r["n_gallery_people"] and r["n_unknown_probes"] == len(names) - r["n_gallery_people"]
    assert r["rank1"] == 1.0, r


def test_evaluate_identification_enrols_and_decides_as_the_product(people_dir, tmp_path, registry_photos,
                                                                 astronaut_bgr):
    """A group photo is refused at enrolment (several usable faces), and a probe too small for the
    kiosk (it asks them to come closer) decides nothing: a miss, never a match."""
    gallery, probes = tmp_path / "gallery", tmp_path / "probes"
    for d in (gallery / "Astronaut", gallery / "Group", probes / "Astronaut"):
        d.mkdir(parents=True)
    (gallery / "Astronaut" / "g.jpg").write_bytes((people_dir / "Astronaut" / "Astronaut_0001.jpg").read_bytes())
    cv2.imwrite(str(gallery / "Group" / "t1.jpg"), registry_photos["t1.jpg"])
    cv2.imwrite(str(probes / "Astronaut" / "far.png"), cv2.resize(astronaut_bgr, (200, 200)))  # face ~60 px
    out = tmp_path / "id.json"
    stdout = io.StringIO()
    call_command("evaluate_identification", gallery=str(gallery), probes=str(probes), json=str(out), stdout=stdout)
    r = json.loads(out.read_text())
    assert r["failed_gallery_images"] == 1 and r["n_gallery_people"] == 1
    # the refused gallery photo is in the printed table too (it was in the JSON only)
    assert "failed_gallery_images  1" in stdout.getvalue()
    assert r["probes_refused_by_quality"] == 1 and r["n_known_probes"] == 1 and r["rank1"] == 0.0


def test_evaluate_identification_uses_the_sites_thresholds(people_dir, tmp_path, settings):
    """The numbers describe what the kiosk will do: ``MASKNET_THRESHOLD_OFFSET`` moves the thresholds
    applied, and the gallery's fitted thresholds are reported (too few people here to raise them)."""
    from enrollment.recognizer import engine_config

    settings.MASKNET_THRESHOLD_OFFSET = 0.05
    gallery = tmp_path / "gallery"
    for n in sorted(p.name for p in people_dir.iterdir()):
        (gallery / n).mkdir(parents=True)
        (gallery / n / "g.jpg").write_bytes((people_dir / n / f"{n}_0001.jpg").read_bytes())
    out = tmp_path / "id.json"
    call_command("evaluate_identification", gallery=str(gallery), probes=str(people_dir), json=str(out))
    t = json.loads(out.read_text())["thresholds"]
    cfg = engine_config()
    assert (t["unmasked"], t["masked"]) == (cfg.threshold_unmasked, cfg.threshold_masked)
    settings.MASKNET_THRESHOLD_OFFSET = 0.0
    assert engine_config().threshold_unmasked == pytest.approx(t["unmasked"] - 0.05)


def test_commands_refuse_missing_dirs(tmp_path):
    with pytest.raises(CommandError):
        call_command("evaluate_pairs", images=str(tmp_path / "nope"), pairs=str(tmp_path / "p.txt"))
    with pytest.raises(CommandError):
        call_command("evaluate_identification", gallery=str(tmp_path / "a"), probes=str(tmp_path / "b"))
    # a mistyped people file must not silently train the mask head on every LFW person (test people too)
    with pytest.raises(CommandError, match="not found"):
        call_command("train_mask_classifier", masked=str(tmp_path), unmasked=str(tmp_path),
                     unmasked_people=str(tmp_path / "peopleDevTrian.txt"))


def test_bad_pairs_files_and_empty_folders_are_refused_before_the_models_load(tmp_path, monkeypatch):
    from recognition.management.commands import evaluate_identification, evaluate_pairs

    for command in (evaluate_pairs, evaluate_identification):
        monkeypatch.setattr(command, "engine_from_settings", lambda: pytest.fail("the models must not be needed"))
    (tmp_path / "imgs").mkdir()
    for body, message in (("Name abc 2\n", "bad pairs line: Name abc 2"), ("A 1 B x\n", "bad pairs line: A 1 B x"),
                          ("", "no pairs"), ("A 1 2\nB 1 2\n", "only same-person pairs")):
        (tmp_path / "p.txt").write_text(body)
        with pytest.raises(CommandError, match=message):
            call_command("evaluate_pairs", images=str(tmp_path / "imgs"), pairs=str(tmp_path / "p.txt"))
    (tmp_path / "p.txt").write_text("Jane_Doe 1 2\nJane_Doe 1 Joe_Roe 1\n")   # pairs whose images are not there
    with pytest.raises(CommandError, match="3 images of .* are not under"):
        call_command("evaluate_pairs", images=str(tmp_path / "imgs"), pairs=str(tmp_path / "p.txt"))
    (tmp_path / "probes" / "Nobody").mkdir(parents=True)
    with pytest.raises(CommandError, match="no images"):
        call_command("evaluate_identification", gallery=str(tmp_path / "imgs"), probes=str(tmp_path / "probes"))


def test_folds_hold_both_classes_whatever_the_pairs_file_header(tmp_path):
    """pairsDevTest.txt (header "500": every same pair first) was cut into class-pure folds."""
    from recognition.engine.evaluation import find_image, parse_pairs, stratified_folds

    rows = [f"A{i} 1 2" for i in range(20)] + [f"A{i} 1 B{i} 1" for i in range(20)]
    (tmp_path / "dev.txt").write_text("20\n" + "\n".join(rows) + "\n")
    pairs = parse_pairs(tmp_path, tmp_path / "dev.txt")
    for f in range(10):
        fold = [p for p in pairs if p.fold == f]
        assert sorted(p.same for p in fold) == [False, False, True, True], f
    full = ["2\t2"] + rows[:2] + rows[20:22] + rows[2:4] + rows[22:24]   # "F N": LFW's own folds
    (tmp_path / "full.txt").write_text("\n".join(full) + "\n")
    assert [p.fold for p in parse_pairs(tmp_path, tmp_path / "full.txt")] == [0] * 4 + [1] * 4
    assert list(stratified_folds([True] * 3 + [False] * 3, n_folds=3)) == [0, 1, 2, 0, 1, 2]
    # saved by Windows' Notepad, with a byte-order mark: "bad pairs line: \ufeff20" before
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf" + (tmp_path / "dev.txt").read_bytes())
    assert parse_pairs(tmp_path, tmp_path / "bom.txt") == pairs
    # a dot in a name is kept: Mary.Smith/Mary.Smith_0001.jpg
    (tmp_path / "Mary.Smith").mkdir()
    (tmp_path / "Mary.Smith" / "Mary.Smith_0001.png").write_bytes(b"x")
    assert find_image(tmp_path, "Mary.Smith", 1).name == "Mary.Smith_0001.png"


def test_verification_metrics_on_known_scores():
    from recognition.engine.evaluation import roc_auc, tar_at_far, verification_metrics

    rng = np.random.default_rng(0)
    same = np.array([True] * 300 + [False] * 300)
    scores = np.where(same, rng.normal(0.7, 0.1, 600), rng.normal(0.1, 0.1, 600))
    m = verification_metrics(scores, same, np.arange(600) % 10)
    assert 0.99 < m["accuracy"] <= 1.0 and m["auc"] > 0.999
    assert roc_auc(np.array([0.1, 0.2, 0.3, 0.4]), np.array([False, False, True, True])) == 1.0
    assert roc_auc(np.array([0.5, 0.5]), np.array([True, False])) == 0.5
    s = np.concatenate([np.linspace(0, 1, 100), np.linspace(0, 1, 100)])
    lab = np.array([True] * 100 + [False] * 100)
    assert tar_at_far(s, lab, 0.0) <= 0.01 + 1e-9


def test_train_adapter_refuses_a_people_file_it_cannot_read(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "people.txt").write_text("2\nAna_Silva 3 extra\nBo 2\n")
    with pytest.raises(CommandError, match="not an LFW people file"):
        call_command("train_adapter", images=str(tmp_path / "imgs"), people=str(tmp_path / "people.txt"))


def test_people_files_lose_only_their_count_lines(tmp_path):
    """LFW's count lines go (``people.txt`` has one before each fold); a file without them keeps its
    first person (``train_adapter`` dropped the first line whatever it was); not UTF-8: refused."""
    from masknet_site.command_line import people_file_rows

    lfw, plain, latin = tmp_path / "lfw.txt", tmp_path / "plain.txt", tmp_path / "latin.txt"
    lfw.write_text("\ufeff2\nAna_Silva\t3\n\n10\nBo\t2\n", encoding="utf-8")
    plain.write_text("Ana_Silva 3\nBo 2\n")
    latin.write_bytes("Zoë\t2\n".encode("latin-1"))
    assert people_file_rows(lfw) == people_file_rows(plain) == [["Ana_Silva", "3"], ["Bo", "2"]]
    assert people_file_rows(plain, keep_number=lambda n: True) == [["Ana_Silva", "3"], ["Bo", "2"]]
    assert people_file_rows(lfw, keep_number=lambda n: n == "10")[-2:] == [["10"], ["Bo", "2"]]
    with pytest.raises(CommandError, match="not UTF-8 text"):
        people_file_rows(latin)


@pytest.mark.parametrize("option, value", [("n_unmasked", -1), ("synthetic", -5)])
def test_train_mask_classifier_refuses_negative_counts(tmp_path, option, value):
    """A negative count sliced photos off the end of the list instead of being refused."""
    with pytest.raises(CommandError, match="must be 0 or more"):
        call_command("train_mask_classifier", masked=str(tmp_path), unmasked=str(tmp_path), **{option: value})


@pytest.mark.parametrize("command, option, relative", [
    ("train_adapter", "images", "lfw/images_deepfunneled"),
    ("train_mask_classifier", "masked", "rwmfd_part1"),
])
def test_training_commands_read_the_data_sets_where_the_benchmarks_do(monkeypatch, tmp_path, command, option,
                                                                     relative):
    """``MASKNET_SHARED_DATA`` moves the training commands' default data folders too."""
    from django.core.management import load_command_class

    monkeypatch.setenv("MASKNET_SHARED_DATA", str(tmp_path))
    parser = load_command_class("recognition", command).create_parser("manage.py", command)
    assert parser.get_default(option) == str(tmp_path / relative)


def test_evaluate_identification_fails_when_nobody_could_be_enrolled(installed_models, tmp_path):
    """A gallery of unreadable files printed rank-1 "nan" and exited 0: a script must notice."""
    for folder in ("gallery", "probes"):
        (tmp_path / folder / "Jane_Doe").mkdir(parents=True)
        (tmp_path / folder / "Jane_Doe" / "x.jpg").write_bytes(b"\xff\xd8\xff not a photo")
    with pytest.raises(CommandError, match="no gallery photo"):
        call_command("evaluate_identification", gallery=str(tmp_path / "gallery"), probes=str(tmp_path / "probes"),
                     stdout=io.StringIO(), stderr=io.StringIO())


def test_train_adapter_feature_gain_writes_the_gain_and_its_metrics(people_dir, tmp_path):
    """``--feature-gain`` on a tiny LFW-style tree: SFace's 1024x7x7 gain and mean, float16, the
    metrics beside them, and the feature maps cached for the next run."""
    names = sorted(p.name for p in people_dir.iterdir())
    people = tmp_path / "people.txt"
    people.write_text(f"{len(names)}\n" + "".join(f"{n} 2\n" for n in names))
    out, cache = tmp_path / "gain.npz", tmp_path / "cache"
    call_command("train_adapter", feature_gain=True, images=str(people_dir), people=str(people), steps=3,
                 out=str(out), cache=str(cache), stdout=io.StringIO())
    with np.load(out) as z:
        assert z["gain"].shape == z["mean"].shape == (1024, 7, 7) and z["gain"].dtype == np.float16
        assert np.isfinite(z["gain"].astype(np.float32)).all() and abs(float(z["gain"].mean()) - 1) < 0.05
    metrics = json.loads(out.with_suffix(".json").read_text())
    # each person's first photo (the second is a .png, which the LFW naming does not reach): two masks each
    assert metrics["photos"] == len(names) and metrics["rows"] == 2 * len(names) and metrics["steps"] == 3
    assert len(list(cache.glob("maps-*.npz"))) == 1
    again = io.StringIO()
    call_command("train_adapter", feature_gain=True, images=str(people_dir), people=str(people), steps=3,
                 out=str(out), cache=str(cache), stdout=again)
    assert "using cached feature maps" in again.getvalue()
    # a cache cut short (Ctrl-C, a full disk, before it was written atomically) is computed again;
    # every later run stopped on it with a BadZipFile traceback
    cached = next(cache.glob("maps-*.npz"))
    cached.write_bytes(cached.read_bytes()[:3000])
    said = io.StringIO()
    call_command("train_adapter", feature_gain=True, images=str(people_dir), people=str(people), steps=3,
                 out=str(out), cache=str(cache), stdout=io.StringIO(), stderr=said)
    assert "unreadable" in said.getvalue() and np.load(cached)["masked"].shape[0] == 2 * len(names)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "gain.json", "gain.npz", "people.txt"]
    assert sorted(p.name for p in cache.iterdir()) == [cached.name]   # no temporary file left behind


@pytest.mark.parametrize("option, value", [("steps", 0), ("steps", -5), ("limit_people", -1), ("renderings", 0),
                                           ("seed", -1), ("max_per_person", 0)])
def test_train_adapter_refuses_option_values_it_would_misread(tmp_path, option, value):
    """--steps -5 wrote an untrained adapter (loss NaN) and exited 0, 0 became the default, a negative
    --limit-people dropped people off the end, --seed -1 was a traceback after the models loaded."""
    (tmp_path / "imgs").mkdir()
    (tmp_path / "people.txt").write_text("Ana_Silva 3\nBo 2\n")
    with pytest.raises(CommandError, match=f"--{option.replace('_', '-')} must be at least"):
        call_command("train_adapter", images=str(tmp_path / "imgs"), people=str(tmp_path / "people.txt"),
                     **{option: value})


def test_a_masked_list_with_a_byte_order_mark_names_its_first_image(tmp_path):
    """Its first path read "\ufeffAna/Ana_0001.png", which named no image: one masked face fewer, silently."""
    from recognition.engine.benchmark import masked_entries

    listed = tmp_path / "masked.txt"
    listed.write_bytes("\ufeffAna/Ana_0001.png\nBo/Bo_0002.png\n".encode())
    assert masked_entries(listed, tmp_path) == {"Ana/Ana_0001.png", "Bo/Bo_0002.png"}


def test_evaluate_pairs_says_when_the_masked_list_names_none_of_its_images(people_dir, tmp_path):
    """A list written with other paths than --images' gave empty masked subsets, exit 0; a folder
    as --json failed only after the whole evaluation. Absolute paths under --images are taken."""
    names = sorted(p.name for p in people_dir.iterdir())
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("".join(f"{n}\t1\t2\n" for n in names) + f"{names[0]}\t1\t{names[1]}\t2\n")
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text(f"/somewhere/else/{names[0]}_0002.png\n")
    with pytest.raises(CommandError, match="names none of the images"):
        call_command("evaluate_pairs", images=str(people_dir), pairs=str(pairs), masked_list=str(elsewhere))
    absolute = tmp_path / "absolute.txt"
    absolute.write_text(f"{people_dir / names[0] / (names[0] + '_0002.png')}\n")
    with pytest.raises(CommandError, match="is a folder"):
        call_command("evaluate_pairs", images=str(people_dir), pairs=str(pairs), masked_list=str(absolute),
                     json=str(tmp_path))
    out = tmp_path / "out.json"
    call_command("evaluate_pairs", images=str(people_dir), pairs=str(pairs), masked_list=str(absolute),
                 json=str(out), stdout=io.StringIO())
    assert json.loads(out.read_text())["subsets"]["masked_unmasked"]["n"] == 1


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc (a folder nobody can create files in)")
def test_a_json_target_nobody_can_write_is_refused_before_the_evaluation():
    """Permission bits say yes to root on any folder (os.access), also on a read-only file system:
    the folder is tried with a temporary file, so the refusal comes before an hour's evaluation."""
    from recognition.management.commands._common import check_json_target

    with pytest.raises(CommandError, match="cannot be written to"):
        check_json_target("/proc/masknet-results.json")


def test_a_training_refuses_an_out_it_cannot_write_before_it_trains(tmp_path, monkeypatch):
    """train_mask_classifier and train_adapter wrote --out only at the end: a folder or an unwritable
    place lost the whole embedding and training run to a traceback. Refused first now, before any
    photo is read. Found by a helper's review."""
    from recognition.management.commands import train_adapter, train_mask_classifier

    for module in (train_mask_classifier, train_adapter):
        monkeypatch.setattr(module, "load_engine", lambda *a, **k: pytest.fail("nothing may be embedded"))
    (tmp_path / "people.txt").write_text("1\nSomeone\t2\n")
    for out in (str(tmp_path), "/proc/masknet-head.npz"):
        with pytest.raises(CommandError, match="--out .*(is a folder|cannot be written to)"):
            call_command("train_mask_classifier", masked=str(tmp_path), unmasked=str(tmp_path), out=out)
        with pytest.raises(CommandError, match="--out .*(is a folder|cannot be written to)"):
            call_command("train_adapter", images=str(tmp_path), people=str(tmp_path / "people.txt"), out=out)


def test_results_are_written_as_standard_json(tmp_path):
    """A NaN metric (rank-1 with no known probe) came out as NaN, which strict JSON readers refuse."""
    from recognition.management.commands._common import write_json

    out = tmp_path / "r.json"
    write_json({"rank1": float("nan"), "nested": {"x": [1.5, float("inf")]}, "n": np.int64(3)}, str(out))
    assert json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(c)) == {
        "rank1": None, "nested": {"x": [1.5, None]}, "n": 3.0}


def test_a_damaged_gain_file_is_a_conversion_error_not_a_traceback(tmp_path, monkeypatch):
    """install_models caught only ModelConversionError: a truncated shipped gain was a BadZipFile."""
    from recognition.engine import install
    from recognition.engine.errors import ModelConversionError

    broken = tmp_path / "sface_gain-v1.npz"
    broken.write_bytes(b"PK\x03\x04 cut short")
    monkeypatch.setattr(install, "gain_path", lambda descriptor: broken)
    with pytest.raises(ModelConversionError, match="unreadable"):
        install.load_gain("sface")


def test_train_adapter_feature_gain_takes_one_photo_people_and_more_renderings(people_dir, tmp_path):
    """``--min-photos 1`` trains on people the LFW file lists with one photo (left out by default) and
    ``--renderings 3`` draws three masks on each photo: three rows a photo."""
    names = sorted(p.name for p in people_dir.iterdir())
    people = tmp_path / "people.txt"
    people.write_text(f"{len(names)}\n" + "".join(f"{n} 1\n" for n in names))
    out, cache = tmp_path / "gain.npz", tmp_path / "cache"
    with pytest.raises(CommandError, match="--min-photos"):   # one photo each: nobody by default
        call_command("train_adapter", feature_gain=True, images=str(people_dir), people=str(people), steps=3,
                     out=str(out), cache=str(cache), stdout=io.StringIO())
    call_command("train_adapter", feature_gain=True, images=str(people_dir), people=str(people), steps=3,
                 min_photos=1, renderings=3, out=str(out), cache=str(cache), stdout=io.StringIO())
    metrics = json.loads(out.with_suffix(".json").read_text())
    assert metrics["photos"] == len(names) and metrics["rows"] == 3 * len(names) and metrics["min_photos"] == 1
    assert "3 per photo" in metrics["masks"]


def test_identification_without_strangers_reports_no_fnir_at_fpir_rather_than_everyone_missed():
    """With no probe of a person outside the gallery there is no FPIR to set a threshold by: the
    threshold was infinite and FNIR at FPIR 1e-2 came out 1.0 (every enrolled probe missed) beside a
    rank-1 of 1.0; not measured now (null in the JSON, "-" in the table). Found by a helper's review."""
    from recognition.engine.evaluation import identification_metrics
    from recognition.management.commands._common import _finite, fmt

    m = identification_metrics(["a", "b"], np.array([0.9, 0.8]), ["a", "b"], np.array([True, True]),
                               np.array([0.5, 0.5]))
    assert m["rank1"] == 1.0 and m["fnir_at_threshold"] == 0.0
    assert np.isnan(m["fnir_at_fpir_1e-2"]) and _finite(m)["fnir_at_fpir_1e-2"] is None
    assert fmt(m["fnir_at_fpir_1e-2"]) == fmt(m["fpir_at_threshold"]) == "-"
    with_stranger = identification_metrics(["a", "b", "a"], np.array([0.9, 0.8, 0.3]), ["a", "b", "c"],
                                           np.array([True, True, False]), np.array([0.5, 0.5, 0.5]))
    assert with_stranger["fnir_at_fpir_1e-2"] == 0.0 and with_stranger["fpir_at_threshold"] == 0.0
