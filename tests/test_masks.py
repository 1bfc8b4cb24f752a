"""Synthetic masks: the product renderer, the dlib-68 mapping, MaskTheFace template warping and
``manage.py mask_faces``.

The test face is ``skimage.data.astronaut()`` with landmarks from the installed models; tests
that need them skip (with the reason) when ``install_models`` has not run. Templates are
generated here (no ``../shared``), in MaskTheFace's ``masks.cfg`` format.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from recognition.engine import masks
from recognition.engine.landmarks import LEFT_BROW, RIGHT_BROW

REPO = Path(__file__).resolve().parent.parent
RIGHT_EYE_RING = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
LEFT_EYE_RING = (362, 398, 384, 385, 386, 387, 388, 466, 263, 249, 390, 373, 374, 380, 381, 382)


@pytest.fixture(scope="module")
def face(installed_models, astronaut_bgr) -> tuple[np.ndarray, np.ndarray]:
    """``(image, 468x3 landmarks)`` of the astronaut's face, from the real detector and mesh."""
    from recognition.engine.detect import BlazeFaceDetector
    from recognition.engine.landmarks import FaceMesh
    from recognition.engine.runtime import load_model

    det = BlazeFaceDetector(load_model(installed_models, "blazeface"))
    mesh = FaceMesh(load_model(installed_models, "facemesh"))
    dets = det(astronaut_bgr, min_confidence=0.55, iou=0.3, max_faces=10)
    assert dets, "BlazeFace should find the astronaut's face"
    largest = max(dets, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
    return astronaut_bgr, mesh(astronaut_bgr, [largest])[0].points


def _polygon_mask(shape: tuple[int, ...], points: np.ndarray, rings) -> np.ndarray:
    m = np.zeros(shape[:2], np.uint8)
    for ring in rings:
        cv2.fillPoly(m, [np.round(points[list(ring), :2]).astype(np.int32)], 1)
    return m > 0


def _lower_face_box(points: np.ndarray) -> tuple[slice, slice]:
    """Between the mouth corners, from just under the nose tip to just above the chin."""
    x0, x1 = sorted((points[61, 0], points[291, 0]))
    y0 = points[2, 1] + 2
    y1 = points[152, 1] - 4
    return slice(int(y0), int(y1)), slice(int(x0), int(x1))


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).max(2)


# --------------------------------------------------------------------------- catalogue, no models


def test_styles_and_colours():
    assert set(masks.MASK_STYLES) == {"surgical", "n95", "kn95", "cloth"}
    assert {"blue", "white", "green", "black"} <= set(masks.MASK_STYLES["surgical"].colors)
    assert "white" in masks.MASK_STYLES["n95"].colors
    assert {"white", "black"} <= set(masks.MASK_STYLES["kn95"].colors)
    patterns = {c.pattern for c in masks.MASK_STYLES["cloth"].colors.values()}
    assert "plain" in patterns and len(patterns) >= 4
    for style in masks.MASK_STYLES.values():
        assert style.description
        for c in style.colors.values():
            assert len(c.base) == 3 and all(0 <= v <= 255 for v in c.base)


def test_image_rng_depends_on_seed_and_path_only():
    a = masks.image_rng(7, "x/y.jpg").random(4)
    assert np.array_equal(a, masks.image_rng(7, "x/y.jpg").random(4))
    assert np.array_equal(a, masks.image_rng(7, "x\\y.jpg").random(4))  # same relative path on Windows
    assert not np.array_equal(a, masks.image_rng(8, "x/y.jpg").random(4))
    assert not np.array_equal(a, masks.image_rng(7, "x/z.jpg").random(4))


def test_render_rejects_bad_input():
    img = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError):
        masks.render_mask(img, np.zeros((10, 3)), np.random.default_rng(0))
    with pytest.raises(ValueError):
        masks.render_mask(img[..., 0], np.zeros((468, 3)), np.random.default_rng(0))


def test_mask_directory_reports_missing_input_and_faceless_images(tmp_path):
    with pytest.raises(FileNotFoundError):
        masks.mask_directory(tmp_path / "missing", tmp_path / "out", lambda img: None)
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    cv2.imwrite(str(src / "sub" / "grey.png"), np.full((40, 50, 3), 128, np.uint8))
    (src / "notes.txt").write_text("not an image")
    (src / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    # a JPEG cut short: OpenCV decodes its top and greys the rest, which read as "without a face"
    ok, whole = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    (src / "cut.jpg").write_bytes(whole.tobytes()[: len(whole) // 2])
    assert cv2.imread(str(src / "cut.jpg")) is not None
    lines: list[str] = []
    report = masks.mask_directory(src, tmp_path / "out", lambda img: None, log=lines.append)
    assert report.no_face == ["sub/grey.png"] and report.failed == ["broken.jpg", "cut.jpg"] and not report.written
    assert not (tmp_path / "out" / "sub" / "grey.png").exists()
    assert any("cut.jpg" in line and "truncated" in line for line in lines), lines
    assert lines and "[3/3]" in lines[-1]


# --------------------------------------------------------------------------- templates, no models


def _write_template_set(root: Path) -> Path:
    """A tiny MaskTheFace-style folder: masks/masks.cfg + masks/templates/*.png (red ovals)."""
    tdir = root / "masks" / "templates"
    tdir.mkdir(parents=True)
    rgba = np.zeros((120, 200, 4), np.uint8)
    cv2.ellipse(rgba, (100, 60), (98, 58), 0, 0, 360, (30, 30, 220, 255), -1)
    cv2.imwrite(str(tdir / "oval.png"), rgba)
    cv2.imwrite(str(tdir / "oval_left.png"), rgba)
    (root / "masks" / "masks.cfg").write_text(
        "[oval]\ntemplate:   masks/templates/oval.png\n"
        "mask_a:     4, 40\nmask_b:     100, 4\nmask_c:     196, 40\n"
        "mask_d:     20, 95\nmask_e:     100, 117\nmask_f:     180, 95\n\n"
        ";[commented]\n;template: masks/templates/none.png\n\n"
        "[oval_left]\ntemplate: masks/templates/oval_left.png\n"
        "mask_c: 196, 40\nmask_b: 100, 4\nmask_a: 4, 40\nmask_f: 180, 95\nmask_e: 100, 117\nmask_d: 20, 95\n\n"
        "[empty]\n[inpaint_right]\n")
    return root


def test_load_templates_reads_the_cfg_format(tmp_path):
    templates = masks.load_templates(_write_template_set(tmp_path))
    assert [(t.name, t.base, t.view) for t in templates] == [("oval", "oval", "front"), ("oval_left", "oval", "left")]
    assert templates[0].image.shape == (120, 200, 4)
    assert np.allclose(templates[1].anchors, [[4, 40], [100, 4], [196, 40], [20, 95], [100, 117], [180, 95]])
    assert masks.load_templates(tmp_path / "masks")[0].name == "oval"  # the cfg's own folder works too


def test_load_templates_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        masks.load_templates(tmp_path)
    (tmp_path / "masks.cfg").write_text("[x]\ntemplate: masks/templates/missing.png\n")
    with pytest.raises(FileNotFoundError):
        masks.load_templates(tmp_path)
    cv2.imwrite(str(tmp_path / "t.png"), np.zeros((8, 8, 4), np.uint8))
    (tmp_path / "masks.cfg").write_text("[x]\ntemplate: t.png\nmask_a: 1, 2\n")
    with pytest.raises(ValueError):
        masks.load_templates(tmp_path)


def test_template_view_follows_maskthefaces_threshold():
    assert masks.template_view(0.0) == "front"
    assert masks.template_view(20.0) == "left"
    assert masks.template_view(-20.0) == "right"


# --------------------------------------------------------------------------- with the models


@pytest.mark.models
def test_to_dlib68_layout(face):
    _, points = face
    lm = masks.to_dlib68(points)
    assert lm.shape == (68, 2) and lm.dtype == np.float32
    jaw = lm[:17]
    assert np.all(np.diff(jaw[:, 0]) > 0), "jaw runs from the image left (subject's right) to the right"
    assert int(np.argmax(jaw[:, 1])) in (7, 8, 9), "the chin is the jaw's lowest point"
    assert np.allclose(jaw[8], points[152, :2])
    right_eye, left_eye, mouth = lm[36:42].mean(0), lm[42:48].mean(0), lm[48:68].mean(0)
    assert right_eye[0] < left_eye[0]
    assert max(right_eye[1], left_eye[1]) < lm[30, 1] < mouth[1] < jaw[8, 1]
    assert lm[17:27, 1].mean() < min(right_eye[1], left_eye[1]), "brows above the eyes"
    assert np.all(np.diff(lm[27:31, 1]) > 0), "nose bridge runs down"
    assert lm[48, 0] < lm[54, 0], "mouth corners in dlib's order"


@pytest.mark.models
@pytest.mark.parametrize("style", sorted(masks.MASK_STYLES))
def test_mask_covers_lower_face_but_never_the_eyes(face, style):
    image, points = face
    before = image.copy()
    out = masks.render_mask(image, points, np.random.default_rng(0), style=style)
    assert np.array_equal(image, before), "the input image is not modified"
    assert out.shape == image.shape and out.dtype == np.uint8
    diff = _diff(out, image)
    rows, cols = _lower_face_box(points)
    assert (diff[rows, cols] > 12).mean() > 0.95, "nose, mouth and chin are covered"
    assert diff[_polygon_mask(image.shape, points, (RIGHT_EYE_RING, LEFT_EYE_RING))].max() == 0
    brow_y = int(points[list(RIGHT_BROW + LEFT_BROW), 1].min())
    assert diff[:brow_y].max() == 0, "nothing above the brows changes"
    # nose bridge: covered a bit below the eyes (between FaceMesh 6 and 197), not at 168
    assert diff[int(points[195, 1]), int(points[195, 0])] > 12
    assert diff[int(points[168, 1]), int(points[168, 0])] == 0


@pytest.mark.models
def test_render_is_deterministic_for_a_seed(face):
    image, points = face
    a = masks.render_mask(image, points, np.random.default_rng(42))
    b = masks.render_mask(image, points, np.random.default_rng(42))
    c = masks.render_mask(image, points, np.random.default_rng(43))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    t = masks.apply_mask(image, points, np.random.default_rng(42))
    assert np.array_equal(t, a), "apply_mask without templates is the product renderer"


@pytest.mark.models
def test_styles_and_colours_differ(face):
    image, points = face
    rows, cols = _lower_face_box(points)
    renders = {s: masks.render_mask(image, points, np.random.default_rng(5), style=s,
                                    color="white" if s == "n95" else "black") for s in masks.MASK_STYLES}
    (x0, y0), (x1, y1) = points[:, :2].min(0).astype(int), points[:, :2].max(0).astype(int)
    face_box = (slice(y0, y1 + (y1 - y0) // 3), slice(x0, x1))
    covered = {s: (_diff(r, image) > 12)[face_box] for s, r in renders.items()}
    names = sorted(renders)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            iou = (covered[a] & covered[b]).sum() / (covered[a] | covered[b]).sum()
            assert iou < 0.97, f"{a} and {b} have the same outline"
            assert _diff(renders[a], renders[b])[face_box].mean() > 3, f"{a} and {b} look the same"
    blue = masks.render_mask(image, points, np.random.default_rng(5), style="surgical", color="blue")
    white = masks.render_mask(image, points, np.random.default_rng(5), style="surgical", color="white")
    b_mean = blue[rows, cols].reshape(-1, 3).mean(0)
    w_mean = white[rows, cols].reshape(-1, 3).mean(0)
    assert b_mean[0] > b_mean[2] + 30, "blue is blue (BGR)"
    assert w_mean.min() > b_mean.min() and abs(w_mean[0] - w_mean[2]) < 30, "white is light and neutral"
    with pytest.raises(ValueError):
        masks.render_mask(image, points, np.random.default_rng(0), style="visor")
    with pytest.raises(ValueError):
        masks.render_mask(image, points, np.random.default_rng(0), style="n95", color="tartan")


@pytest.mark.models
def test_render_on_aligned_crop_and_2d_landmarks(face):
    from recognition.engine import EngineConfig
    from recognition.engine.align import eye_similarity, warp
    from recognition.engine.landmarks import LEFT_EYE, RIGHT_EYE

    image, points = face
    cfg = EngineConfig()
    m = eye_similarity(points[list(RIGHT_EYE), :2].mean(0), points[list(LEFT_EYE), :2].mean(0),
                       cfg.aligned_size, cfg.eye_distance, cfg.eye_y)
    crop = warp(image, m, cfg.aligned_size)
    crop_points = masks.transform_landmarks(points, m)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    assert np.allclose(crop_points[:, 2], points[:, 2] * scale, atol=1e-3)
    for pts in (crop_points, crop_points[:, :2]):
        out = masks.render_mask(crop, pts, np.random.default_rng(1), style="surgical")
        rows, cols = _lower_face_box(crop_points)
        diff = _diff(out, crop)
        assert (diff[rows, cols] > 12).mean() > 0.95
        assert diff[_polygon_mask(crop.shape, crop_points, (RIGHT_EYE_RING, LEFT_EYE_RING))].max() == 0


@pytest.mark.models
def test_warp_template_places_the_template_on_the_lower_face(face, tmp_path):
    image, points = face
    templates = masks.load_templates(_write_template_set(tmp_path))
    out = masks.warp_template(image, points, templates[0])
    rows, cols = _lower_face_box(points)
    region = out[rows, cols].reshape(-1, 3).astype(float)
    assert (region[:, 2] > region[:, 1] + 60).mean() > 0.9, "the red template covers the mouth"
    eyes = _polygon_mask(image.shape, points, (RIGHT_EYE_RING, LEFT_EYE_RING))
    assert _diff(out, image)[eyes].mean() < 1
    six, angle = masks.six_points(points)
    assert six.shape == (6, 2) and abs(angle) < 13, "the astronaut faces the camera"
    a, b, c, f, e, d = six
    assert a[0] < b[0] < c[0] and d[0] < e[0] < f[0]
    assert b[1] < e[1] and a[1] < d[1] and c[1] < f[1]
    # apply_mask with templates: deterministic, and picks the view that fits the face
    picked = masks.apply_mask(image, points, np.random.default_rng(3), templates)
    assert np.array_equal(picked, masks.apply_mask(image, points, np.random.default_rng(3), templates))
    assert np.array_equal(picked, out), "a frontal face gets the front template"
    # rolled about 90 degrees (a photo on its side) it is still a frontal face: the two directions
    # compared lie either side of 0/180 degrees there
    for roll in (88.0, 90.5, 93.5, 94.0, -91.0):
        rolled = masks.transform_landmarks(points, cv2.getRotationMatrix2D((256.0, 256.0), roll, 1.0))
        assert masks.template_view(masks.six_points(rolled)[1]) == "front", roll


@pytest.mark.models
def test_mask_faces_command(installed_models, astronaut_bgr, tmp_path):
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        pytest.skip("Django settings are not configured (this test runs under pytest-django)")
    from django.core.management import call_command

    src = tmp_path / "in"
    (src / "people").mkdir(parents=True)
    cv2.imwrite(str(src / "people" / "astronaut.png"), astronaut_bgr)
    cv2.imwrite(str(src / "wall.jpg"), np.full((120, 160, 3), 90, np.uint8))
    outputs, logs = [], []
    for run in ("a", "b"):
        out, err = io.StringIO(), io.StringIO()
        call_command("mask_faces", "--in", str(src), "--out", str(tmp_path / run), "--seed", "9",
                     "--models-dir", str(installed_models), stdout=out, stderr=err)
        outputs.append((tmp_path / run / "people" / "astronaut.png").read_bytes())
        logs.append(out.getvalue())
        assert "[2/2]" in err.getvalue(), "progress goes to stderr"
    assert outputs[0] == outputs[1], "same seed, same output"
    assert not (tmp_path / "a" / "wall.jpg").exists()
    log = logs[0]
    assert "masked 1 of 2" in log and "1 images without a face" in log and "wall.jpg" in log
    masked = cv2.imread(str(tmp_path / "a" / "people" / "astronaut.png"))
    assert masked.shape == astronaut_bgr.shape and not np.array_equal(masked, astronaut_bgr)
    # readable as a plain write's (the temporary file it is written through is the owner's alone)
    from recognition.engine.files import process_umask

    assert (tmp_path / "a" / "people" / "astronaut.png").stat().st_mode & 0o777 == 0o666 & ~process_umask()
    assert sorted(p.name for p in (tmp_path / "a").rglob("*") if p.is_file()) == ["astronaut.png"]


def test_mask_faces_command_fails_clearly_on_a_missing_input(tmp_path):
    proc = subprocess.run([sys.executable, "manage.py", "mask_faces", "--in", str(tmp_path / "nope"),
                           "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "input directory does not exist" in proc.stderr


def test_mask_faces_fails_when_it_finds_no_image(tmp_path):
    """A script or CI job must notice an empty or wrong input folder: not exit 0 having done nothing."""
    from django.core.management import CommandError, call_command

    (tmp_path / "in").mkdir()
    with pytest.raises(CommandError, match="no images found"):
        call_command("mask_faces", "--in", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                     stdout=io.StringIO(), stderr=io.StringIO())


def test_mask_faces_refuses_an_output_it_cannot_write_before_any_work(tmp_path, monkeypatch):
    """A file as --out: every image was analysed, then each failed with "File exists"."""
    from django.core.management import CommandError, call_command

    from recognition.management.commands import mask_faces

    (tmp_path / "in").mkdir()
    (tmp_path / "taken").write_text("a file")
    looked = []
    monkeypatch.setattr(mask_faces.Command, "_face_finder", lambda self, models: looked.append(models))
    with pytest.raises(CommandError, match="cannot write to --out"):
        call_command("mask_faces", "--in", str(tmp_path / "in"), "--out", str(tmp_path / "taken"),
                     stdout=io.StringIO(), stderr=io.StringIO())
    assert looked == []


def test_mask_faces_refuses_a_templates_file_without_sections(tmp_path):
    from django.core.management import CommandError, call_command

    (tmp_path / "in").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "masks.cfg").write_text("template = a.png\n")
    with pytest.raises(CommandError, match="cannot read the mask templates"):
        call_command("mask_faces", "--in", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                     "--templates", str(tmp_path / "masks"))


def test_mask_faces_stopped_by_ctrl_c_says_what_it_wrote(tmp_path, monkeypatch):
    """Ctrl-C printed a traceback and nothing of what was done; each copy is written whole."""
    from django.core.management import CommandError, call_command

    from recognition.management.commands import mask_faces

    (tmp_path / "in").mkdir()
    for name in ("a.png", "b.png", "c.png"):
        cv2.imwrite(str(tmp_path / "in" / name), np.full((40, 50, 3), 128, np.uint8))
    seen = []

    def find_face(image):
        seen.append(image.shape)
        if len(seen) == 2:
            raise KeyboardInterrupt
        return None

    monkeypatch.setattr(mask_faces.Command, "_face_finder", lambda self, models: find_face)
    try:   # one escaping would stop the whole test session, not fail this test
        with pytest.raises(CommandError, match=r"interrupted: 0 masked copies written \(each whole\), 1 images "
                                               r"looked at; run it again"):
            call_command("mask_faces", "--in", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                         stdout=io.StringIO(), stderr=io.StringIO())
    except KeyboardInterrupt:
        pytest.fail("the KeyboardInterrupt escaped the command")
    assert len(seen) == 2


def test_a_copy_is_written_whole_or_not_at_all_and_readable_as_a_plain_writes(tmp_path, monkeypatch):
    """What mask_directory writes each copy with: a run stopped while writing left the copy cut short,
    read later as a damaged or half-grey image; through a temporary file (mkstemp's 0600) the copies
    became the owner's alone, where a plain write left them readable as the umask allows."""
    from recognition.engine import files

    target = tmp_path / "face.jpg"
    target.write_bytes(b"the earlier copy")

    def stopped(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", stopped)
    with pytest.raises(KeyboardInterrupt):
        masks.write_atomic(target, lambda fh: fh.write(b"x" * 100_000), binary=True, shared=True)
    assert target.read_bytes() == b"the earlier copy" and sorted(tmp_path.iterdir()) == [target]
    monkeypatch.undo()
    masks.write_atomic(target, lambda fh: fh.write(b"the new copy"), binary=True, shared=True)
    assert target.read_bytes() == b"the new copy" and sorted(tmp_path.iterdir()) == [target]
    assert target.stat().st_mode & 0o777 == 0o666 & ~files.process_umask()
