"""Loading converted SavedModels (TensorFlow stays behind this module and the model wrappers)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import ModelsMissing

_configured = False


def configure_tensorflow(threads: int | None = None) -> None:
    """Process-wide TensorFlow settings; call before the first model runs.

    Grappler's "remapping" pass is switched off: with oneDNN on, TensorFlow 2.21
    crashed (segmentation fault) rewriting BlazeFace's conv + bias + add-of-a-Pad
    pattern. The converter now emits PadV2, which avoids it, and this setting keeps
    any other graph from meeting the same bug; timings with and without remapping
    were within noise (blazeface ~10 ms, faceres ~23 ms for 2 faces, facemesh ~6 ms).
    """
    global _configured
    if _configured:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.optimizer.set_experimental_options({"remapping": False})
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # already initialised by an earlier TensorFlow call
            pass
    _configured = True


def load_model(models_dir: Path, name: str) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """Load ``models_dir/name`` and return ``f(x) -> {output: ndarray}`` (x: float32 NHWC)."""
    path = Path(models_dir) / name
    if not (path / "saved_model.pb").exists():
        raise ModelsMissing(f"model {name!r} is not installed in {models_dir}; "
                            "run `python manage.py install_models`")
    configure_tensorflow()
    import tensorflow as tf

    module = tf.saved_model.load(str(path))
    fn = module.signatures["serving_default"]

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        out = fn(input=tf.convert_to_tensor(x, tf.float32))
        return {k: v.numpy() for k, v in out.items()}

    run.module = module  # keep the module (and its variables) alive
    return run
