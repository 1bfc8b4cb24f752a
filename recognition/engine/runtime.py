"""Loading converted SavedModels, run as TensorFlow Lite or TensorFlow (both stay behind this module and
the model wrappers)."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import hashlib
import importlib.metadata
import logging
import os
import re
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import numpy as np

from .errors import ModelsMissing
from .files import write_atomic

log = logging.getLogger(__name__)

_configured = False


def _env_threads(name: str, default: int) -> int:
    """A thread count from the environment; a value that is not a whole number >= 0 is refused
    with the variable's name (int()'s own message named neither)."""
    value = os.environ.get(name, "").strip() or str(default)
    if not (value.isascii() and value.isdigit()):
        raise ValueError(f"{name}={value!r}: a whole number of threads is expected (0 or more)")
    return int(value)


# numpy's OpenBLAS threads for the recognizer's process (see limit_blas_threads)
BLAS_THREADS = _env_threads("MASKNET_BLAS_THREADS", 1)


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


# TensorFlow 2.21's native start-up notices, printed on stderr while it is imported whatever
# TF_CPP_MIN_LOG_LEVEL says (absl logs them before TensorFlow reads it): one per native library
_STARTUP_NOISE = re.compile(
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|I\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations are on\. .*")
_import_lock = threading.Lock()


# the filter the import's stderr goes through (a child process: what TensorFlow writes before it
# aborts, "compiled to use AVX instructions" on an older CPU, still reaches the terminal)
# Ctrl-C at a terminal reaches it too (one process group): ignored, it ends with its input, after
# the interrupted import's last words, instead of adding a KeyboardInterrupt traceback of its own
_FILTER = ("import re, signal, sys\n"
           "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
           "noise = re.compile(sys.argv[1].encode())\n"
           "for line in sys.stdin.buffer:\n"
           "    if not noise.fullmatch(line.rstrip(b'\\r\\n')):\n"
           "        sys.stderr.buffer.write(line)\n"
           "        sys.stderr.buffer.flush()\n")


# how long the end of the import waits for the filter to write out what it was sent
FILTER_DRAIN_S = 2.0


@contextlib.contextmanager
def _stderr_without_startup_noise() -> Iterator[None]:
    """Pass what is written to file descriptor 2 (native code and Python alike) through a filter
    process that leaves out :data:`_STARTUP_NOISE`'s lines, until the block ends. Should the
    process die meanwhile, the filter still writes out what it was sent. Where no filter process
    can be started, stderr is left alone: no file descriptor 2 (a daemon started with it closed,
    where ``sys.stderr`` is ``None``), or no interpreter to run (``sys.executable`` empty or
    ``None``, as embedded Pythons may leave it, or not a Python: uWSGI's binary)."""
    _flush_stderr()
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        if not sys.executable or not os.path.basename(sys.executable).lower().startswith("python"):
            # none, or no Python (uWSGI's binary, a frozen application): it would not run the filter
            raise FileNotFoundError(f"no Python interpreter to run the filter with ({sys.executable!r})")
        child = subprocess.Popen([sys.executable, "-I", "-S", "-c", _FILTER, _STARTUP_NOISE.pattern.decode()],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=saved)
    except OSError:
        os.close(saved)
        yield
        return
    os.dup2(child.stdin.fileno(), 2)
    try:
        yield
    finally:
        _flush_stderr()
        os.dup2(saved, 2)
        os.close(saved)
        child.stdin.close()   # the filter's end of input: it writes out the rest and exits
        try:
            # what it was sent comes out before what follows; a process started meanwhile (by
            # this import or by another thread) keeps the pipe as its stderr, and the filter's
            # input open: it is left to go on for that process, not killed (whose stderr would
            # then go nowhere), and the import does not wait for it
            child.wait(timeout=FILTER_DRAIN_S)
        except subprocess.TimeoutExpired:
            pass


def _flush_stderr() -> None:
    """Flush ``sys.stderr`` when there is one (``None`` where the process started without fd 2)."""
    if sys.stderr is not None:
        sys.stderr.flush()


def import_tensorflow() -> ModuleType:
    """The ``tensorflow`` module. Its first import leaves out the native start-up notices that
    TensorFlow 2.21 prints on stderr at every command's start (the oneDNN notice, absl's warning);
    anything else written meanwhile still shows, and ``TF_CPP_MIN_LOG_LEVEL=0`` shows those too."""
    if "tensorflow" in sys.modules:
        # the import statement, not sys.modules' entry: that is there from the start of an import
        # another thread has under way, and the statement waits for it to finish
        import tensorflow
        return tensorflow
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _import_lock:
        if os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0":
            import tensorflow
        else:
            with _stderr_without_startup_noise():
                import tensorflow
    return tensorflow


def configure_tensorflow() -> None:
    """Process-wide TensorFlow settings; call before the first model runs.

    Also caps numpy's OpenBLAS threads (:func:`limit_blas_threads`). TensorFlow's own thread pools
    keep their defaults (setting them measured within noise: docs/performance.md).

    Grappler's "remapping" pass is switched off: with oneDNN on, TensorFlow 2.21
    crashed (segmentation fault) rewriting BlazeFace's conv + bias + add-of-a-Pad
    pattern. The converter now emits PadV2, which avoids it, and this setting keeps
    any other graph from meeting the same bug; timings with and without remapping
    were within noise (blazeface ~10 ms, faceres ~23 ms for 2 faces, facemesh ~6 ms).
    """
    global _configured
    if _configured:
        return
    limit_blas_threads()
    tf = import_tensorflow()

    tf.config.optimizer.set_experimental_options({"remapping": False})
    _configured = True


# "tflite" (the default): each SavedModel runs as a TensorFlow Lite flatbuffer under XNNPACK, built
# from it once and cached beside it; "tensorflow": the SavedModel itself. Each model's outputs agree
# within 1e-4 of their scale (tests/test_runtime.py), and on LFW DevTest the same faces, mask and match
# decisions; TFLite measured 2.2-4.4x faster per model on the 2-core server (docs/performance.md
# "TensorFlow Lite").
RUNTIME = os.environ.get("MASKNET_RUNTIME", "").strip() or "tflite"   # empty: unset, as the settings read it
RUNTIMES = ("tflite", "tensorflow")
# part of the flatbuffer cache's key: raise it when the conversion below changes (options, converter)
TFLITE_CONVERTER_VERSION = 1
# threads per TFLite interpreter: the models are small and a frame's batch is 1-2 faces, so more
# cores than a few only add hand-over cost; MASKNET_MODEL_THREADS overrides
MODEL_THREADS = _env_threads("MASKNET_MODEL_THREADS", 0) or min(len(os.sched_getaffinity(0)), 4)
# tf.lite.Interpreter's notice that it moves to the ai_edge_litert package (it is still in the pinned
# TensorFlow; tests/test_runtime.py fails first if an upgrade drops it)
warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated", category=UserWarning)


def check_runtime(runtime: str | None = None) -> str:
    """``runtime`` (default ``MASKNET_RUNTIME``) if it is one of :data:`RUNTIMES`, else ``ValueError``."""
    runtime = runtime or RUNTIME
    if runtime not in RUNTIMES:
        raise ValueError(f"MASKNET_RUNTIME must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    return runtime


def saved_model_complete(path: Path) -> bool:
    """Whether ``path`` holds a whole SavedModel: its graph and its weights (a folder with the one and
    not the other, a copy cut short or a file deleted by hand, is not installed)."""
    return (path / "saved_model.pb").exists() and (path / "variables" / "variables.index").exists()


def load_model(models_dir: Path, name: str,
               runtime: str | None = None) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """Load ``models_dir/name`` and return ``f(x) -> {output: ndarray}`` (x: float32 NHWC).

    ``runtime``: ``"tflite"`` or ``"tensorflow"`` (default: ``MASKNET_RUNTIME``, else ``"tflite"``).
    The returned function is thread-safe in both."""
    runtime = check_runtime(runtime)
    path = Path(models_dir) / name
    if not saved_model_complete(path):   # rather than a TensorFlow file error
        raise ModelsMissing(f"model {name!r} is not installed in {models_dir}; "
                            "run `python manage.py install_models`")
    configure_tensorflow()
    if runtime == "tflite":
        try:
            run = TFLiteModel(tflite_model(path), MODEL_THREADS)
        except (RuntimeError, ValueError):  # a damaged cache file (a disk error, a killed copy): built anew
            log.warning("the cached TFLite flatbuffer of %s does not load: converting it again", path)
            run = TFLiteModel(tflite_model(path, rebuild=True), MODEL_THREADS)
        run(np.zeros(run.input_shape, np.float32))  # warm-up: XNNPACK packs the weights on the first call
        return run
    tf = import_tensorflow()

    module = tf.saved_model.load(str(path))
    fn = module.signatures["serving_default"]

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        out = fn(input=tf.convert_to_tensor(x, tf.float32))
        return {k: v.numpy() for k, v in out.items()}

    run.module = module  # keep the module (and its variables) alive
    _warm_up(run, fn)
    return run


@functools.cache
def tensorflow_version() -> str:
    """The installed TensorFlow's version, read from the metadata of the one distribution that
    provides the ``tensorflow`` package (``tensorflow-cpu`` here) without importing it: the import
    (4-5 s on 2 cores) was most of what ``install_models`` took with every model up to date, at each
    ``make run``. The module's ``__version__`` where that is not one distribution (none: a source
    tree on the path; several: which one's files were imported is not known)."""
    try:
        dists = set(importlib.metadata.packages_distributions().get("tensorflow", ()))
        if len(dists) == 1:
            return importlib.metadata.version(dists.pop())
    except (importlib.metadata.PackageNotFoundError, OSError, ValueError):
        pass
    return import_tensorflow().__version__


def _source_key(path: Path) -> str:
    """What a cached flatbuffer was built from: the SavedModel's graph and variable index, and the
    TensorFlow that converted it."""
    digest = hashlib.sha256(f"{tensorflow_version()} {TFLITE_CONVERTER_VERSION}".encode())
    for part in ("saved_model.pb", "variables/variables.index"):
        f = path / part
        if f.exists():
            digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def tflite_cached(path: Path) -> bool:
    """Whether ``path`` (a SavedModel folder) holds a flatbuffer built from it as it is now."""
    return (Path(path) / f"model-{_source_key(Path(path))}.tflite").exists()


def tflite_model(path: Path, rebuild: bool = False) -> bytes:
    """The SavedModel at ``path`` as a TFLite flatbuffer: read from ``path/model-<key>.tflite`` when
    the cache matches the SavedModel (unless ``rebuild``), else converted (a few seconds) and cached
    there; a models folder that cannot be written only costs the conversion at every start."""
    path = Path(path)
    cached = path / f"model-{_source_key(path)}.tflite"
    if not rebuild:
        try:
            return cached.read_bytes()
        except OSError:   # not there, or not readable by this user (made by another): converted here
            pass
    tf = import_tensorflow()

    blob = tf.lite.TFLiteConverter.from_saved_model(str(path)).convert()
    try:
        # atomic (another process converting at once writes the same bytes), and readable as the
        # SavedModel beside it is: a folder set up by its owner and read by the service's user
        write_atomic(cached, lambda fh: fh.write(blob), binary=True, shared=True)
        for old in path.glob("model-*.tflite"):
            if old != cached:
                old.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not cache %s (%s): converting it at every start", cached, exc)
    return blob


class TFLiteModel:
    """``f(x) -> {output: ndarray}`` over a TFLite flatbuffer's ``serving_default`` signature.

    An interpreter is not thread-safe: each call borrows one from a pool, and a new one is made when
    all are busy (so there are as many as the most calls ever run at once: the kiosk's workers)."""

    def __init__(self, blob: bytes, threads: int = MODEL_THREADS) -> None:
        self._blob, self._threads = blob, threads
        self._free: list = []
        self._lock = threading.Lock()
        runner = self._runner()
        spec = runner.get_input_details()["input"]
        self.input_shape = [1, *(int(d) for d in spec["shape_signature"][1:])]
        self._free.append(runner)

    def _runner(self):
        with self._lock:
            if self._free:
                return self._free.pop()
        tf = import_tensorflow()

        interpreter = tf.lite.Interpreter(model_content=self._blob, num_threads=self._threads)
        return interpreter.get_signature_runner("serving_default")

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        runner = self._runner()
        try:
            out = runner(input=np.ascontiguousarray(x, np.float32))  # resizes to x's batch as needed
            return {k: np.array(v) for k, v in out.items()}
        finally:
            with self._lock:
                self._free.append(runner)


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
