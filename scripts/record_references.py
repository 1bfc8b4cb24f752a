"""Record the original TF.js runtime's outputs as references for ``tests/test_convert.py``.

For every model of :data:`recognition.engine.registry.MODEL_SPECS` this runs the
*original* TF.js graph model from the ``@vladmandic/human`` package in Node, with the
pure-JS CPU backend of ``@tensorflow/tfjs`` (the exact version pinned in
``scripts/reference/package.json`` / ``package-lock.json``), on the deterministic input
``tests.reference_inputs.reference_input(model)``, and writes

* ``tests/data/references/<model>__<output>.npy``: float32, one per exported output
  (FaceRes's ``embedding`` is the internal tensor ``global_pooling/Mean``);
* ``tests/data/references/manifest.json``: the tfjs and human versions, each model's
  input shape/range/statistics and each output's graph tensor and shape.

With ``--face-api`` it records instead the 128-d descriptor of ``@vladmandic/face-api``'s own
``FaceRecognitionNet`` (dlib's ResNet; face-api ships only its weights, the network is code) on
``reference_input("dlibres")``, with the face-api version pinned in ``scripts/reference``:
``tests/data/references/dlibres__embedding.npy`` and ``dlibres.json``.

The inputs are computed only here in Python and handed to Node as raw float32 files in
a temporary folder (with a ``job.json`` describing them), so the input formula lives in
one place. Node reads the model files straight from the package folder.

Usage (from the repository root; needs Node >= 18 and npm, and the npm registry the
first time, for ``npm ci`` in ``scripts/reference`` when ``node_modules`` is missing
or stale)::

    .venv/bin/python scripts/record_references.py [--package-dir DIR] [--out DIR]
                                                  [--models blazeface faceres ...]

``--package-dir`` is the unpacked npm package (the folder holding ``models/``); it
defaults to ``$MASKNET_HUMAN_PACKAGE_DIR`` or ``<repo>/models/_package/package``.
Re-run this (and with ``--face-api``) after changing ``tests/reference_inputs.py`` or bumping a package.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
DEFAULT_OUT = ROOT / "tests" / "data" / "references"
PACKAGE_ENV = "MASKNET_HUMAN_PACKAGE_DIR"


def default_package_dir() -> Path:
    """Return ``$MASKNET_HUMAN_PACKAGE_DIR`` if set, else ``<repo>/models/_package/package``."""
    env = os.environ.get(PACKAGE_ENV)
    return Path(env) if env else ROOT / "models" / "_package" / "package"


def ensure_node_modules() -> None:
    """Run ``npm ci`` in ``scripts/reference`` unless every pinned dependency is installed."""
    def installed(name: str) -> str | None:
        spec = REFERENCE_DIR / "node_modules" / name / "package.json"
        return json.loads(spec.read_text())["version"] if spec.is_file() else None

    pinned = json.loads((REFERENCE_DIR / "package.json").read_text())["dependencies"]
    if all(installed(name) == version for name, version in pinned.items()):
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm not found: install Node.js >= 18 with npm")
    subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                   cwd=REFERENCE_DIR, check=True)


def record(package_dir: Path, out_dir: Path, model_names: list[str]) -> dict:
    """Run the TF.js models in Node and write the ``.npy`` references plus ``manifest.json``."""
    from recognition.engine.registry import HUMAN_VERSION, MODEL_SPECS
    from tests.reference_inputs import INPUT_RANGES, input_stats, reference_input

    models_dir = package_dir / "models"
    human_version = json.loads((package_dir / "package.json").read_text()).get("version")
    if human_version != HUMAN_VERSION:
        print(f"warning: package is human {human_version}, registry pins {HUMAN_VERSION}",
              file=sys.stderr)
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node not found: install Node.js >= 18")
    ensure_node_modules()

    manifest: dict = {"human_version": human_version, "models": {}}
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="masknet-ref-") as tmp:
        job = []
        for name in model_names:
            spec = MODEL_SPECS[name]
            x = reference_input(name)
            x.astype("<f4").tofile(Path(tmp) / f"{name}.input.bin")
            job.append({"name": name, "model_json": str((models_dir / spec.source).resolve()),
                        "input": f"{name}.input.bin", "shape": list(x.shape),
                        "outputs": dict(spec.outputs)})
            manifest["models"][name] = {"source": spec.source, "input_shape": list(x.shape),
                                        "input_range": list(INPUT_RANGES[name]),
                                        "input_stats": input_stats(x), "outputs": {}}
        (Path(tmp) / "job.json").write_text(json.dumps({"models": job}, indent=2))
        subprocess.run([node, str(REFERENCE_DIR / "record.mjs"), tmp], cwd=REFERENCE_DIR,
                       check=True)
        results = json.loads((Path(tmp) / "results.json").read_text())
        manifest["tfjs_version"] = results["tfjs_version"]
        manifest["tfjs_backend"] = results["backend"]
        for name in model_names:
            for key, info in results["models"][name].items():
                value = np.fromfile(Path(tmp) / info["file"], dtype="<f4")
                value = value.reshape(info["shape"]).astype(np.float32)
                file = f"{name}__{key}.npy"
                np.save(out_dir / file, value)
                manifest["models"][name]["outputs"][key] = {
                    "tensor": info["tensor"], "shape": info["shape"], "file": file}

    manifest_path = out_dir / "manifest.json"
    if manifest_path.is_file() and set(model_names) != set(MODEL_SPECS):
        # partial re-recording: keep the other models' entries
        old = json.loads(manifest_path.read_text())
        manifest["models"] = {**old.get("models", {}), **manifest["models"]}
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def record_face_api(out_dir: Path) -> dict:
    """Run face-api's FaceRecognitionNet in Node on the reference input; write the ``.npy`` and
    ``dlibres.json`` (versions, input statistics)."""
    from recognition.engine.registry import FACE_API_VERSION, RESNET_MODEL
    from tests.reference_inputs import INPUT_RANGES, input_stats, reference_input

    node = shutil.which("node")
    if node is None:
        raise SystemExit("node not found: install Node.js >= 18")
    ensure_node_modules()
    x = reference_input(RESNET_MODEL)
    with tempfile.TemporaryDirectory(prefix="masknet-ref-") as tmp:
        x.astype("<f4").tofile(Path(tmp) / "input.bin")
        subprocess.run([node, str(REFERENCE_DIR / "record_faceapi.cjs"), tmp], cwd=REFERENCE_DIR, check=True)
        results = json.loads((Path(tmp) / "results.json").read_text())
        value = np.fromfile(Path(tmp) / "embedding.bin", dtype="<f4").reshape(1, -1).astype(np.float32)
    if results["face_api_version"] != FACE_API_VERSION:
        print(f"warning: recorded face-api {results['face_api_version']}, registry pins {FACE_API_VERSION}",
              file=sys.stderr)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / f"{RESNET_MODEL}__embedding.npy", value)
    meta = {**results, "input_shape": list(x.shape), "input_range": list(INPUT_RANGES[RESNET_MODEL]),
            "input_stats": input_stats(x), "file": f"{RESNET_MODEL}__embedding.npy", "shape": list(value.shape)}
    (out_dir / f"{RESNET_MODEL}.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from recognition.engine.registry import MODEL_SPECS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package-dir", type=Path, default=default_package_dir(),
                        help="unpacked @vladmandic/human package (holds models/)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="reference folder")
    parser.add_argument("--models", nargs="+", choices=sorted(MODEL_SPECS),
                        default=list(MODEL_SPECS), help="models to record (default: all)")
    parser.add_argument("--face-api", action="store_true",
                        help="record face-api's ResNet descriptor instead (dlibres__embedding.npy)")
    args = parser.parse_args(argv)
    if args.face_api:
        meta = record_face_api(args.out)
        print(f"face-api {meta['face_api_version']}, tfjs {meta['tfjs_version']} ({meta['backend']}): "
              f"wrote {meta['file']} to {args.out}")
        return 0
    if not (args.package_dir / "models").is_dir():
        parser.error(f"{args.package_dir}/models not found (set --package-dir or ${PACKAGE_ENV})")

    manifest = record(args.package_dir, args.out, args.models)
    total = sum((args.out / o["file"]).stat().st_size
                for m in manifest["models"].values() for o in m["outputs"].values())
    print(f"tfjs {manifest['tfjs_version']} ({manifest['tfjs_backend']}): "
          f"wrote {len(args.models)} models to {args.out} ({total / 1024:.1f} KiB of .npy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
