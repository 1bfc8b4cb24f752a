"""Install the face models: ``npm pack`` the pinned package, verify it, extract, convert.

Nothing here runs at request time; ``manage.py install_models`` (and ``make setup``)
call :func:`install_models` once per machine.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

from .convert import convert_model
from .errors import ModelConversionError
from .registry import HUMAN_INTEGRITY, HUMAN_PACKAGE, HUMAN_VERSION, MODEL_SPECS

MANIFEST = "manifest.json"
PACKAGE_SUBDIR = "_package"
# Files kept from the package: the model graphs and shards we convert, and the licence.
_KEEP = {"package/LICENSE", "package/package.json"} | {
    f"package/models/{spec.source[:-5]}{ext}" for spec in MODEL_SPECS.values() for ext in (".json", ".bin")
}


def sri_sha512(path: Path) -> str:
    """Subresource-integrity string (``sha512-<base64>``) of a file, as npm reports it."""
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode()


def _spec_fingerprint() -> str:
    """Changes whenever the pinned package or a model's conversion spec changes."""
    blob = json.dumps({"version": HUMAN_VERSION, "integrity": HUMAN_INTEGRITY,
                       "specs": {k: [v.source, v.outputs, v.input_shape] for k, v in MODEL_SPECS.items()},
                       "converter": 2}, sort_keys=True)
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
    if not all((Path(models_dir) / name / "saved_model.pb").exists() for name in MODEL_SPECS):
        return None
    return manifest


def package_dir(models_dir: Path) -> Path:
    """Where the extracted npm package (TF.js originals and licence) is kept."""
    return Path(models_dir) / PACKAGE_SUBDIR / "package"


def fetch_package(dest: Path, log: Callable[[str], None] = print) -> Path:
    """``npm pack`` the pinned package into ``dest`` and verify its integrity; returns the tarball."""
    tarball = dest / f"vladmandic-human-{HUMAN_VERSION}.tgz"
    if tarball.exists() and sri_sha512(tarball) == HUMAN_INTEGRITY:
        return tarball
    npm = shutil.which("npm")
    if not npm:
        raise ModelConversionError("npm is not installed: it is needed once to fetch the face models "
                                   f"({HUMAN_PACKAGE}@{HUMAN_VERSION}); install Node.js and npm")
    dest.mkdir(parents=True, exist_ok=True)
    log(f"fetching {HUMAN_PACKAGE}@{HUMAN_VERSION} with npm pack ...")
    proc = subprocess.run([npm, "pack", f"{HUMAN_PACKAGE}@{HUMAN_VERSION}", "--json",
                           "--pack-destination", str(dest)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise ModelConversionError(f"npm pack failed (is the npm registry reachable?):\n{proc.stderr.strip()[-2000:]}")
    info = json.loads(proc.stdout)[0]
    if info.get("integrity") != HUMAN_INTEGRITY or sri_sha512(tarball) != HUMAN_INTEGRITY:
        tarball.unlink(missing_ok=True)
        raise ModelConversionError("the downloaded package does not match the pinned integrity hash")
    return tarball


def extract(tarball: Path, dest: Path) -> Path:
    """Extract the files we use from the package tarball (no other paths are written)."""
    with tarfile.open(tarball, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.name in _KEEP and m.isfile()]
        missing = _KEEP - {m.name for m in members}
        if missing:
            raise ModelConversionError(f"package lacks {sorted(missing)}")
        tar.extractall(dest, members=members, filter="data")
    return dest / "package"


def install_models(models_dir: Path, *, force: bool = False,
                   log: Callable[[str], None] = print) -> dict:
    """Fetch, verify, extract and convert every model in :data:`MODEL_SPECS`. Idempotent.

    Returns the manifest written to ``models_dir/manifest.json``.
    """
    models_dir = Path(models_dir)
    if not force and (manifest := installed_manifest(models_dir)):
        log(f"models up to date in {models_dir} ({HUMAN_PACKAGE}@{manifest['version']})")
        return manifest
    cache = models_dir / PACKAGE_SUBDIR
    tarball = fetch_package(cache, log)
    src = extract(tarball, cache) / "models"
    converted = {}
    for name, spec in MODEL_SPECS.items():
        log(f"converting {name} ({spec.source}) ...")
        convert_model(src / spec.source, models_dir / name, spec.outputs, spec.input_shape)
        converted[name] = {"source": spec.source, "outputs": sorted(spec.outputs),
                           "input_shape": list(spec.input_shape)}
    manifest = {"package": HUMAN_PACKAGE, "version": HUMAN_VERSION, "integrity": HUMAN_INTEGRITY,
                "fingerprint": _spec_fingerprint(), "models": converted}
    (models_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    log(f"installed {len(converted)} models in {models_dir}")
    return manifest
