"""Loading converted SavedModels (TensorFlow stays behind this module and the model wrappers)."""

from __future__ import annotations

import ctypes
import glob
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import ModelsMissing

log = logging.getLogger(__name__)

_configured = False
# numpy's OpenBLAS threads for the recognizer's process (see limit_blas_threads)
BLAS_THREADS = int(os.environ.get("MASKNET_BLAS_THREADS", "1"))


def limit_blas_threads(threads: int = BLAS_THREADS) -> bool:
    """Cap the threads of numpy's bundled OpenBLAS; returns whether it could be done.

    Measured on the 2-core server (bench/speed.py, docs/performance.md): with OpenBLAS's default
    (one thread per core) its idle threads spin while TensorFlow runs, and every small matrix
    product (index search, masked classifier) paid 5-8 ms for waking them; a 1k-template search
    took 8 ms instead of 0.2 ms and a whole frame ~115 ms instead of ~70 ms. The kiosk already runs
    several frames in parallel, so one BLAS thread per caller is the right shape.
    """
    if threads <= 0:
        return False
    try:
        import numpy as np

        libs = glob.glob(os.path.join(os.path.dirname(np.__file__) + ".libs", "*openblas*.so*"))
        for path in libs:
            lib = ctypes.CDLL(path)
            for name in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                         "openblas_set_num_threads64_", "openblas_set_num_threads"):
                if hasattr(lib, name):
                    getattr(lib, name)(ctypes.c_int(threads))
                    return True
    except OSError:
        log.debug("could not limit OpenBLAS threads", exc_info=True)
    return False


def configure_tensorflow(threads: int | None = None) -> None:
    """Process-wide TensorFlow settings; call before the first model runs.

    Also caps numpy's OpenBLAS threads (:func:`limit_blas_threads`).

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
    limit_blas_threads()
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
    _warm_up(run, fn)
    return run


def _warm_up(run: Callable[[np.ndarray], dict[str, np.ndarray]], fn) -> None:
    """Run the model once on zeros of its input shape (batch 1) so that the first real frame does
    not pay for TensorFlow's one-time graph set-up (~0.2-1 s per model on this CPU)."""
    try:
        spec = fn.structured_input_signature[1]["input"]
        shape = [1 if d is None else int(d) for d in spec.shape]
    except (AttributeError, KeyError, IndexError, TypeError):
        return
    if len(shape) == 4 and all(d > 0 for d in shape):
        run(np.zeros(shape, np.float32))
