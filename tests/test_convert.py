"""Equivalence of :mod:`recognition.engine.convert` with the original TF.js runtime.

Each model of ``MODEL_SPECS`` is converted from the extracted ``@vladmandic/human``
package into a SavedModel, run on the deterministic input of
:mod:`tests.reference_inputs`, and compared with what ``@tensorflow/tfjs`` (pure-JS
CPU backend) produced for the same input, recorded in ``tests/data/references`` by
``scripts/record_references.py``. No network and no Node are needed here.

Tolerance: every output must satisfy ``max|converted - tfjs| <= RTOL * scale`` with
``scale = max(max|tfjs|, 1)``, i.e. an absolute error of ``RTOL`` for outputs of unit
size and a relative one for large outputs (BlazeFace's box regressions and logits are
in pixels, FaceMesh's points in pixels of the 192x192 crop); the FaceRes embedding
must also have cosine similarity ``> 0.9999`` with the reference. Measured on x86-64
(TF 2.21 CPU vs tfjs 4.22.0) the worst relative error is 1e-6 (oneDNN off; with oneDNN
on, the default, most outputs are bit-identical), so ``RTOL = 1e-4`` leaves a 100x
margin for other CPUs/BLAS while still catching a wrong op or a mis-decoded weight.

The SavedModels are called through their signature (graph mode, grappler and oneDNN
rewrites included), which is how the engine runs them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from recognition.engine.convert import read_weights
from recognition.engine.errors import ModelConversionError
from recognition.engine.registry import MODEL_SPECS
from tests.reference_inputs import input_stats, reference_input

REPO = Path(__file__).resolve().parents[1]
REFERENCES = Path(__file__).resolve().parent / "data" / "references"
PACKAGE_ENV = "MASKNET_HUMAN_PACKAGE_DIR"

# max|converted - tfjs| / max(max|tfjs|, 1) allowed for every output.
RTOL = 1e-4
MIN_EMBEDDING_COSINE = 0.9999


def find_human_models_dir() -> tuple[Path | None, str]:
    """Locate the TF.js models (the package's ``models/`` folder) and say where it looked.

    ``$MASKNET_HUMAN_PACKAGE_DIR`` (the unpacked npm package) wins; otherwise
    ``<repo>/models/_package/package``, where ``install_models`` extracts it.
    """
    env = os.environ.get(PACKAGE_ENV)
    package = Path(env) if env else REPO / "models" / "_package" / "package"
    models = package / "models"
    return (models if models.is_dir() else None), str(models)


@pytest.fixture(scope="session")
def human_models_dir() -> Path:
    """Return the TF.js models folder; skip the test if the package is not extracted."""
    models, looked_at = find_human_models_dir()
    if models is None:
        pytest.skip(f"TF.js models of @vladmandic/human not found at {looked_at}; "
                    f"set ${PACKAGE_ENV} to the unpacked package or extract it there")
    return models


@pytest.fixture(scope="session")
def reference_manifest() -> dict:
    """Load ``tests/data/references/manifest.json`` (written by ``record_references.py``)."""
    return json.loads((REFERENCES / "manifest.json").read_text())


@pytest.fixture(scope="module")
def converted(human_models_dir: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Callable]:
    """Return ``get(name)``: the ``serving_default`` function of the converted model."""
    import tensorflow as tf

    from recognition.engine.convert import convert_model

    cache: dict[str, Callable] = {}
    root = tmp_path_factory.mktemp("converted")

    def get(name: str) -> Callable:
        if name not in cache:
            spec = MODEL_SPECS[name]
            out = convert_model(human_models_dir / spec.source, root / name, spec.outputs,
                                spec.input_shape)
            loaded = tf.saved_model.load(str(out))
            fn = loaded.signatures["serving_default"]
            fn._masknet_keepalive = loaded  # the concrete function needs its module alive
            cache[name] = fn
        return cache[name]

    return get


def test_references_cover_every_model(reference_manifest: dict) -> None:
    """Every model and output of the registry has a recorded reference."""
    assert set(reference_manifest["models"]) == set(MODEL_SPECS)
    for name, spec in MODEL_SPECS.items():
        recorded = reference_manifest["models"][name]
        assert set(recorded["outputs"]) == set(spec.outputs), name
        for key, info in recorded["outputs"].items():
            assert info["tensor"] == spec.outputs[key], (name, key)
            assert (REFERENCES / info["file"]).is_file(), info["file"]


@pytest.mark.parametrize("name", list(MODEL_SPECS))
def test_reference_inputs_unchanged(name: str, reference_manifest: dict) -> None:
    """The input formula is still the one the references were recorded with."""
    recorded = reference_manifest["models"][name]
    x = reference_input(name)
    assert list(x.shape) == recorded["input_shape"]
    stats = input_stats(x)
    for k, v in recorded["input_stats"].items():
        assert stats[k] == pytest.approx(v, rel=1e-6, abs=1e-6), (
            f"{name}: input {k} changed; re-run scripts/record_references.py")


@pytest.mark.models
@pytest.mark.parametrize("name", list(MODEL_SPECS))
def test_converted_matches_tfjs(name: str, converted: Callable[[str], Callable],
                                reference_manifest: dict) -> None:
    """The converted SavedModel reproduces the TF.js outputs on the reference input."""
    import tensorflow as tf

    fn = converted(name)
    got = {k: v.numpy() for k, v in fn(input=tf.constant(reference_input(name))).items()}
    assert set(got) == set(MODEL_SPECS[name].outputs)
    for key, info in reference_manifest["models"][name]["outputs"].items():
        ref = np.load(REFERENCES / info["file"])
        out = got[key]
        assert out.dtype == np.float32
        assert out.shape == ref.shape, (name, key, out.shape, ref.shape)
        scale = max(float(np.abs(ref).max()), 1.0)
        err = float(np.abs(out.astype(np.float64) - ref).max())
        assert err <= RTOL * scale, (
            f"{name}/{key}: max abs diff {err:.3g} > {RTOL} * {scale:.3g}")


@pytest.mark.models
def test_faceres_embedding_cosine(converted: Callable[[str], Callable]) -> None:
    """FaceRes's embedding points the same way as TF.js's (what matching relies on)."""
    import tensorflow as tf

    out = converted("faceres")(input=tf.constant(reference_input("faceres")))
    emb = out["embedding"].numpy().astype(np.float64).ravel()
    ref = np.load(REFERENCES / "faceres__embedding.npy").astype(np.float64).ravel()
    assert np.count_nonzero(ref) > 100, "degenerate reference embedding"
    cosine = emb @ ref / (np.linalg.norm(emb) * np.linalg.norm(ref))
    assert cosine > MIN_EMBEDDING_COSINE


# --- read_weights on a synthetic manifest (no package needed) ---------------------------


def test_read_weights_dequantises_float16_uint8_uint16(tmp_path: Path) -> None:
    """float16/uint8/uint16 quantisation and plain dtypes decode as TF.js decodes them."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2, 3)).astype(np.float32)           # float16-quantised float32
    b_q = np.array([0, 1, 127, 255], dtype=np.uint8)          # uint8-quantised float32
    c_q = np.array([[0, 65535], [300, 7]], dtype=np.uint16)   # uint16-quantised float32
    d = np.array([-3, 0, 7], dtype=np.int32)                  # plain int32
    e = np.float32(2.5)                                       # plain float32 scalar
    f_q = np.array([0, 1, 2, 3], dtype=np.uint8)              # uint8-quantised int32
    b_scale, b_min = 0.0123, -1.5
    c_scale, c_min = 1e-4, -3.25
    f_scale, f_min = 0.5, -1.0

    buf1 = a.astype(np.float16).tobytes() + b_q.tobytes() + c_q.tobytes()
    buf2 = d.tobytes() + e.tobytes() + f_q.tobytes()
    # group 1 is split over two shards, cut inside a weight
    (tmp_path / "g1-shard1of2.bin").write_bytes(buf1[:5])
    (tmp_path / "g1-shard2of2.bin").write_bytes(buf1[5:])
    (tmp_path / "g2.bin").write_bytes(buf2)
    manifest = [
        {"paths": ["g1-shard1of2.bin", "g1-shard2of2.bin"], "weights": [
            {"name": "a", "shape": [2, 3], "dtype": "float32",
             "quantization": {"dtype": "float16"}},
            {"name": "b", "shape": [4], "dtype": "float32",
             "quantization": {"dtype": "uint8", "scale": b_scale, "min": b_min}},
            {"name": "c", "shape": [2, 2], "dtype": "float32",
             "quantization": {"dtype": "uint16", "scale": c_scale, "min": c_min}},
        ]},
        {"paths": ["g2.bin"], "weights": [
            {"name": "d", "shape": [3], "dtype": "int32"},
            {"name": "e", "shape": [], "dtype": "float32"},
            {"name": "f", "shape": [4], "dtype": "int32",
             "quantization": {"dtype": "uint8", "scale": f_scale, "min": f_min}},
        ]},
    ]

    w = read_weights(manifest, tmp_path)

    assert set(w) == {"a", "b", "c", "d", "e", "f"}
    assert w["a"].dtype == np.float32 and w["a"].shape == (2, 3)
    np.testing.assert_array_equal(w["a"], a.astype(np.float16).astype(np.float32))
    # TF.js: values[i] = q * scale + min, computed in double and stored as float32
    assert w["b"].dtype == np.float32 and w["b"].shape == (4,)
    np.testing.assert_array_equal(w["b"], (b_q.astype(np.float64) * b_scale + b_min)
                                  .astype(np.float32))
    assert w["c"].dtype == np.float32 and w["c"].shape == (2, 2)
    np.testing.assert_array_equal(w["c"], (c_q.astype(np.float64) * c_scale + c_min)
                                  .astype(np.float32))
    assert w["d"].dtype == np.int32
    np.testing.assert_array_equal(w["d"], d)
    assert w["e"].shape == () and w["e"] == np.float32(2.5)
    # TF.js rounds quantised int32 weights with Math.round: -1, -0.5 -> -0, 0, 0.5 -> 1
    assert w["f"].dtype == np.int32
    np.testing.assert_array_equal(w["f"], np.array([-1, 0, 0, 1], dtype=np.int32))


def test_read_weights_rejects_bad_shard_sizes(tmp_path: Path) -> None:
    """Shards that are too short or too long raise ModelConversionError."""
    spec = {"name": "w", "shape": [4], "dtype": "float32",
            "quantization": {"dtype": "uint8", "scale": 1.0, "min": 0.0}}
    (tmp_path / "short.bin").write_bytes(bytes(3))
    with pytest.raises(ModelConversionError, match="runs past the end"):
        read_weights([{"paths": ["short.bin"], "weights": [spec]}], tmp_path)
    (tmp_path / "long.bin").write_bytes(bytes(6))
    with pytest.raises(ModelConversionError, match="unused bytes"):
        read_weights([{"paths": ["long.bin"], "weights": [spec]}], tmp_path)


# --- face-api's ResNet descriptor (weights only; the network is rebuilt by build_face_api_resnet) ---

FACE_API_ENV = "MASKNET_FACE_API_PACKAGE_DIR"


@pytest.fixture(scope="module")
def face_api_resnet(tmp_path_factory: pytest.TempPathFactory) -> Callable:
    """The ``serving_default`` function of face-api's ResNet converted from the extracted package
    (``$MASKNET_FACE_API_PACKAGE_DIR`` or where ``install_models`` puts it); skip if absent."""
    import tensorflow as tf

    from recognition.engine.convert import convert_face_api_resnet
    from recognition.engine.registry import RESNET_SOURCE

    env = os.environ.get(FACE_API_ENV)
    package = Path(env) if env else REPO / "models" / "_package" / "face-api" / "package"
    manifest = package / "model" / f"{RESNET_SOURCE}-weights_manifest.json"
    if not manifest.is_file():
        pytest.skip(f"face-api weights not found at {manifest}; run manage.py install_models or set ${FACE_API_ENV}")
    loaded = tf.saved_model.load(str(convert_face_api_resnet(manifest, tmp_path_factory.mktemp("resnet") / "dlibres")))
    fn = loaded.signatures["serving_default"]
    fn._masknet_keepalive = loaded
    return fn


def test_face_api_reference_input_unchanged() -> None:
    """The ResNet's reference input is still the one face-api's descriptor was recorded on."""
    from recognition.engine.registry import RESNET_MODEL

    recorded = json.loads((REFERENCES / f"{RESNET_MODEL}.json").read_text())
    x = reference_input(RESNET_MODEL)
    assert list(x.shape) == recorded["input_shape"]
    for k, v in recorded["input_stats"].items():
        assert input_stats(x)[k] == pytest.approx(v, rel=1e-6, abs=1e-6), k


@pytest.mark.models
def test_face_api_resnet_matches_face_api(face_api_resnet: Callable) -> None:
    """The rebuilt network reproduces face-api's own FaceRecognitionNet (run in Node by
    ``scripts/record_references.py --face-api``) on the reference input."""
    import tensorflow as tf

    from recognition.engine.registry import RESNET_MODEL

    ref = np.load(REFERENCES / f"{RESNET_MODEL}__embedding.npy")
    got = face_api_resnet(input=tf.constant(reference_input(RESNET_MODEL)))["embedding"].numpy()
    assert got.shape == ref.shape == (1, 128)
    assert float(np.abs(got - ref).max()) <= RTOL * max(float(np.abs(ref).max()), 1.0)
    cos = float((got @ ref.T)[0, 0] / (np.linalg.norm(got) * np.linalg.norm(ref)))
    assert cos > MIN_EMBEDDING_COSINE


def test_face_api_resnet_needs_all_its_weights() -> None:
    """A weights file that lacks a layer is refused with a clear error, not a KeyError mid-graph."""
    from recognition.engine.convert import build_face_api_resnet

    with pytest.raises(ModelConversionError, match="lacks weights"):
        build_face_api_resnet({"fc": np.zeros((256, 128), np.float32)})
