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
Re-run this after changing ``tests/reference_inputs.py`` or bumping either package.
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


def pinned_tfjs_version() -> str:
    """Return the exact ``@tensorflow/tfjs`` version pinned in ``scripts/reference``."""
    spec = json.loads((REFERENCE_DIR / "package.json").read_text())
    return spec["dependencies"]["@tensorflow/tfjs"]


def ensure_node_modules() -> None:
    """Run ``npm ci`` in ``scripts/reference`` unless the pinned tfjs is already installed."""
    installed = REFERENCE_DIR / "node_modules" / "@tensorflow" / "tfjs" / "package.json"
    version = json.loads(installed.read_text())["version"] if installed.is_file() else None
    if version == pinned_tfjs_version():
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
    args = parser.parse_args(argv)
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
