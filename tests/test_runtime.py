"""The model runtime (:mod:`recognition.engine.runtime`): TensorFlow Lite, the default, against the
SavedModels it is built from, its flatbuffer cache, and calls from several threads at once."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from recognition.engine import runtime
from recognition.engine.runtime import load_model, tflite_cached, tflite_model


def _tiny_saved_model(folder: Path, seed: int = 0) -> Path:
    """A small conv net saved as the converters save theirs: signature ``serving_default``, input
    ``input`` (NHWC float32, any batch), outputs ``embedding`` and ``score``."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    kernel = tf.constant(rng.standard_normal((3, 3, 3, 8)).astype(np.float32))
    dense = tf.constant(rng.standard_normal((8, 4)).astype(np.float32))

    class Tiny(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32, name="input")])
        def serve(self, input):  # noqa: A002 (the converters' input name)
            x = tf.nn.relu(tf.nn.conv2d(input, kernel, 1, "SAME"))
            pooled = tf.reduce_mean(x, axis=[1, 2])
            return {"embedding": tf.matmul(pooled, dense), "score": tf.reduce_max(pooled, axis=1, keepdims=True)}

    module = Tiny()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A models folder holding one tiny SavedModel, ``tiny``."""
    root = tmp_path_factory.mktemp("models")
    _tiny_saved_model(root / "tiny")
    return root


def test_tflite_runs_a_saved_model_as_tensorflow_does_at_any_batch(tiny):
    lite, full = load_model(tiny, "tiny", runtime="tflite"), load_model(tiny, "tiny", runtime="tensorflow")
    for batch in (1, 3, 2, 1):  # the interpreter is resized to each batch in turn
        x = np.random.default_rng(batch).uniform(0, 1, (batch, 16, 16, 3)).astype(np.float32)
        got, want = lite(x), full(x)
        assert set(got) == set(want) == {"embedding", "score"}
        for key in want:
            assert got[key].shape == want[key].shape
            np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-5)


def test_the_flatbuffer_is_cached_beside_its_saved_model_and_rebuilt_when_that_changes(tmp_path):
    folder = _tiny_saved_model(tmp_path / "tiny", seed=1)
    assert not tflite_cached(folder)
    blob = tflite_model(folder)
    cached = list(folder.glob("model-*.tflite"))
    assert len(cached) == 1 and cached[0].read_bytes() == blob and tflite_cached(folder)
    assert tflite_model(folder) == blob  # read back, not converted again

    _tiny_saved_model(folder, seed=2)  # the model is converted anew with other weights
    assert not tflite_cached(folder)
    x = np.ones((1, 16, 16, 3), np.float32)
    got = load_model(tmp_path, "tiny", runtime="tflite")(x)["embedding"]
    want = load_model(tmp_path, "tiny", runtime="tensorflow")(x)["embedding"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)  # the new weights, not the cached old ones
    assert [p.name for p in folder.glob("model-*.tflite")] != [cached[0].name]
    assert len(list(folder.glob("model-*.tflite"))) == 1  # the stale one removed


def test_calls_from_several_threads_at_once_get_their_own_answers(tiny):
    run = load_model(tiny, "tiny", runtime="tflite")
    inputs = [np.random.default_rng(i).uniform(0, 1, (1 + i % 3, 16, 16, 3)).astype(np.float32) for i in range(24)]
    want = [run(x)["embedding"] for x in inputs]
    got: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work(offset: int) -> None:
        try:
            start.wait()
            for i in range(offset, len(inputs), 4):
                got[i] = run(inputs[i])["embedding"]
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a call hung"
    assert not errors
    for i, expected in enumerate(want):
        np.testing.assert_allclose(got[i], expected, rtol=1e-6, atol=1e-7)


def test_an_unknown_runtime_is_refused_by_name(tiny):
    with pytest.raises(ValueError, match="MASKNET_RUNTIME"):
        load_model(tiny, "tiny", runtime="onnx")


def test_a_model_folder_without_its_weights_is_not_installed(tmp_path):
    """A copy cut short (the graph without ``variables/``): the site's "run install_models", not a
    TensorFlow file error, in both runtimes."""
    import shutil

    from recognition.engine.errors import ModelsMissing

    folder = _tiny_saved_model(tmp_path / "tiny", seed=5)
    shutil.rmtree(folder / "variables")
    for name in ("tflite", "tensorflow"):
        with pytest.raises(ModelsMissing, match="install_models"):
            load_model(tmp_path, "tiny", runtime=name)


def test_a_damaged_cached_flatbuffer_is_built_again(tmp_path):
    folder = _tiny_saved_model(tmp_path / "tiny", seed=4)
    tflite_model(folder)
    (cached,) = folder.glob("model-*.tflite")
    cached.write_bytes(b"not a flatbuffer")
    x = np.ones((2, 16, 16, 3), np.float32)
    got = load_model(tmp_path, "tiny", runtime="tflite")(x)["embedding"]
    want = load_model(tmp_path, "tiny", runtime="tensorflow")(x)["embedding"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert cached.read_bytes()[4:8] == b"TFL3"  # replaced by a real one
    assert not list(folder.glob("*.tmp"))


def test_install_builds_the_flatbuffers_of_the_models_the_site_loads_only(tmp_path, monkeypatch):
    from recognition.engine import EngineConfig
    from recognition.engine.errors import ModelConversionError
    from recognition.engine.install import engine_models, prepare_runtime

    assert engine_models(EngineConfig.for_descriptor("sface")) == ["blazeface", "facemesh", "faceres", "sface"]
    assert engine_models(EngineConfig.for_descriptor("faceres+resnet"))[-1] == "dlibres"
    for name in ("faceres", "antispoof"):  # antispoof: installed, never loaded by an engine
        _tiny_saved_model(tmp_path / name)
    monkeypatch.setattr(runtime, "RUNTIME", "tflite")
    sface = EngineConfig.for_descriptor("sface")
    assert prepare_runtime(tmp_path, sface, log=lambda _: None) == ["faceres"]
    assert tflite_cached(tmp_path / "faceres") and not tflite_cached(tmp_path / "antispoof")
    assert prepare_runtime(tmp_path, sface, log=lambda _: None) == []  # up to date
    monkeypatch.setattr(runtime, "RUNTIME", "tensorflow")
    assert prepare_runtime(tmp_path, sface, log=lambda _: None) == []
    monkeypatch.setattr(runtime, "RUNTIME", "TFLite")
    with pytest.raises(ModelConversionError, match="MASKNET_RUNTIME"):
        prepare_runtime(tmp_path, sface, log=lambda _: None)


@pytest.mark.models
@pytest.mark.parametrize("name", ["blazeface", "facemesh", "faceres", "sface", "arcface", "dlibres"])
def test_each_installed_model_gives_the_same_outputs_under_tflite(installed_models, name, request):
    """The product's own models: TFLite (XNNPACK) against the SavedModel, within float32 round-off
    (the opt-in ArcFace in its own temporary models directory)."""
    if name == "arcface":
        installed_models = request.getfixturevalue("arcface_models")
    if not (installed_models / name / "saved_model.pb").exists():
        pytest.skip(f"{name} is not installed")
    lite = load_model(installed_models, name, runtime="tflite")
    full = load_model(installed_models, name, runtime="tensorflow")
    low, high = {"sface": (0.0, 255.0), "dlibres": (0.0, 255.0), "arcface": (-1.0, 1.0)}.get(name, (0.0, 1.0))
    x = np.random.default_rng(3).uniform(low, high, lite.input_shape).astype(np.float32)
    got, want = lite(x), full(x)
    assert set(got) == set(want)
    for key in want:
        scale = float(np.abs(want[key]).max()) or 1.0
        np.testing.assert_allclose(got[key] / scale, want[key] / scale, atol=1e-4)



@pytest.mark.models
@pytest.mark.parametrize("descriptor", ["sface", "faceres+resnet"])
def test_install_prepares_exactly_the_models_an_engine_loads(installed_models, monkeypatch, descriptor):
    """``install.engine_models`` (what install builds flatbuffers for) names what ``load_engine`` loads."""
    import recognition.engine as engine_module
    from recognition.engine import EngineConfig
    from recognition.engine.install import engine_models

    config = EngineConfig.for_descriptor(descriptor)
    if not all((installed_models / name / "saved_model.pb").exists() for name in engine_models(config)):
        pytest.skip(f"{descriptor}'s models are not all installed")
    loaded: list[str] = []
    real = engine_module._load_model

    def recording(models_dir, name, runtime=None):
        loaded.append(name)
        return real(models_dir, name, runtime=runtime)

    monkeypatch.setattr(engine_module, "_load_model", recording)
    engine_module._load_engine.__wrapped__(installed_models, config, None, "tflite")  # past the cache
    assert sorted(loaded) == sorted(engine_models(config))


def test_the_cached_flatbuffer_is_readable_as_the_saved_model_is(tmp_path, monkeypatch):
    """It was written 0600 (mkstemp): a models folder set up by its owner and read by the service's
    user failed to load at all (PermissionError); and an unreadable cache is converted again."""
    import os
    import stat

    from recognition.engine import runtime

    class Converter:
        @staticmethod
        def from_saved_model(path):
            return type("C", (), {"convert": staticmethod(lambda: b"flatbuffer")})()

    import tensorflow as tf

    monkeypatch.setattr(tf.lite, "TFLiteConverter", Converter)
    (tmp_path / "saved_model.pb").write_bytes(b"graph")
    old = os.umask(0o022)
    try:
        assert runtime.tflite_model(tmp_path) == b"flatbuffer"
    finally:
        os.umask(old)
    cached = next(tmp_path.glob("model-*.tflite"))
    assert stat.S_IMODE(cached.stat().st_mode) == 0o644
    real = type(cached).read_bytes
    monkeypatch.setattr(type(cached), "read_bytes",
                        lambda self: (_ for _ in ()).throw(PermissionError(13, "denied")) if self == cached
                        else real(self))
    assert runtime.tflite_model(tmp_path) == b"flatbuffer"    # converted here instead of failing


def test_tensorflows_start_up_notices_are_left_out_and_everything_else_is_kept():
    """TensorFlow 2.21 prints absl's 'before InitializeLog' warning and the oneDNN notice on stderr
    while it is imported, whatever TF_CPP_MIN_LOG_LEVEL says: every command started with them. A
    fresh process, so that the import is a first one; ``TF_CPP_MIN_LOG_LEVEL=0`` shows them."""
    import subprocess
    import sys

    script = ("import os, sys\n"
              "from recognition.engine.runtime import _stderr_without_startup_noise, import_tensorflow\n"
              "with _stderr_without_startup_noise():\n"
              "    os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written '\n"
              "             b'to STDERR\\n')\n"
              "    os.write(2, b'I0000 00:00:1796487996.323621    7427 port.cc:153] oneDNN custom operations are on. "
              "You may see slightly different numerical results.\\n')\n"
              "    os.write(2, b'E0000 a real native error\\n')\n"
              "    print('a Python warning', file=sys.stderr)\n"
              "import_tensorflow()\n"
              "print(sys.modules['tensorflow'].__version__)\n")
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()   # imported
    assert done.stderr.splitlines() == ["E0000 a real native error", "a Python warning"]


def test_make_n_prints_the_workers_steps_without_running_them():
    """``make -n worker`` ran install_models (a recipe line naming $(MAKE) runs under -n)."""
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(["make", "-n", "worker"], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "manage.py install_models" in done.stdout           # printed...
    assert "up to date" not in done.stdout + done.stderr       # ...not run (it says what it found)
    assert "celery -A masknet_site worker" in done.stdout


def test_make_run_and_worker_together_install_once():
    """``make -j2 run worker`` ran ``setup`` for the site and ``installed`` for the worker: two
    installs (pip, then install_models) into one virtualenv at once. Both now share one step."""
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(["make", "-n", "run", "worker"], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("manage.py install_models") == 1, done.stdout
    assert "manage.py runserver" in done.stdout and "celery -A masknet_site worker" in done.stdout


@pytest.mark.parametrize(("allowed", "shown"), [("vm,other", "vm"), ("localhost, vm.example.org", "vm.example.org"),
                                               ("", "127.0.0.1"), ("localhost", "127.0.0.1")])
def test_make_run_on_every_interface_prints_an_address_the_site_answers(allowed, shown):
    """``make run HOST=0.0.0.0`` printed this machine's first address whatever DJANGO_ALLOWED_HOSTS said:
    with the machine named there (as the README allows) the printed address, and the pairing links
    built from it, answered 400; without it (the development settings, this machine's clients alone),
    403. Found by a helper following the README."""
    import os
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "DJANGO_ALLOWED_HOSTS": allowed}
    done = subprocess.run(["make", "-n", "--no-print-directory", "run", "HOST=0.0.0.0", "PORT=8080"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"Admin: http://{shown}:8080/admin/" in done.stdout and f"--base-url http://{shown}:8080" in done.stdout


def test_a_second_thread_waits_for_the_first_threads_import_of_tensorflow(tmp_path):
    """sys.modules holds a module from the start of its import: a second thread asking meanwhile
    was handed the half-imported module (no ``lite``, no ``__version__``)."""
    import subprocess
    import sys

    package = tmp_path / "tensorflow"
    package.mkdir()
    (package / "__init__.py").write_text("import time\ntime.sleep(1.0)\n__version__ = 'fake'\n")
    script = ("import threading, time\n"
              "from recognition.engine.runtime import import_tensorflow\n"
              "first = threading.Thread(target=import_tensorflow)\n"
              "first.start()\n"
              "time.sleep(0.3)\n"
              "print(getattr(import_tensorflow(), '__version__', None))\n"
              "first.join()\n")
    root = Path(__file__).resolve().parents[1]
    env = {**__import__("os").environ, "PYTHONPATH": f"{tmp_path}:{root}"}
    done = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fake"


def test_what_tensorflow_writes_before_it_aborts_its_import_still_shows(tmp_path):
    """On a CPU without the instructions it was built for, TensorFlow writes why and aborts while
    it is imported: that line must reach the terminal (held back until the import ended, it was
    lost with the process, which exited 134 without a word). A stand-in ``tensorflow`` package that
    does the same, in a fresh process."""
    import os
    import subprocess
    import sys

    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import os\n"
        "os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n')\n"
        "os.write(2, b'The TensorFlow library was compiled to use AVX instructions, but these are not available\\n')\n"
        "os.abort()\n")
    root = Path(__file__).resolve().parents[1]
    env = {**{k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)])}
    done = subprocess.run([sys.executable, "-c", "from recognition.engine.runtime import import_tensorflow\n"
                           "import_tensorflow()\n"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.splitlines() == [
        "The TensorFlow library was compiled to use AVX instructions, but these are not available"], done.stderr


@pytest.mark.parametrize("case", ["no fd 2", "sys.executable None", "sys.executable not Python"])
def test_tensorflow_is_imported_without_a_stderr_or_an_interpreter_to_filter_it_with(tmp_path, case):
    """A daemon started with file descriptor 2 closed (``sys.stderr`` is ``None``) failed the import
    with AttributeError, and an embedded Python's ``sys.executable`` of ``None`` with TypeError:
    stderr is left alone there instead, as where ``sys.executable`` is no Python (uWSGI's, a frozen
    application's), which would have run with the filter's arguments and lost what was written."""
    import os
    import subprocess
    import sys

    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text("import os\n__version__ = 'fake'\n"
                                      "try:\n    os.write(2, b'kept\\n')\nexcept OSError:\n    pass\n")
    root = Path(__file__).resolve().parents[1]
    env = {**{k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)])}
    script = ("import sys\n"
              + ("sys.executable = None\n" if case == "sys.executable None" else "")
              + ("sys.executable = '/bin/false'\n" if case == "sys.executable not Python" else "")
              + "from recognition.engine.runtime import import_tensorflow\n"
                "print(import_tensorflow().__version__)\n")
    # "no fd 2": the interpreter starts with it closed (a daemon's `2>&-`)
    closed = {"preexec_fn": lambda: os.close(2)} if case == "no fd 2" else {}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60, **closed)
    assert done.returncode == 0 and done.stdout.strip() == "fake", done.stdout
    if case != "no fd 2":
        assert done.stderr.splitlines() == ["kept"], done.stderr


def test_a_process_started_during_the_import_neither_holds_it_up_nor_loses_its_stderr(tmp_path):
    """A process started while the import ran (by it, or by another thread) has the filter's pipe
    as its stderr: the import waited 10 s for the filter's end of input, then killed the filter,
    and what that process wrote later went nowhere."""
    import os
    import subprocess
    import sys

    from recognition.engine.runtime import FILTER_DRAIN_S

    helper_s = 6.0   # the helper's life: an import that waited for it took at least this long
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        f"import subprocess\nsubprocess.Popen(['sh', '-c', 'sleep {helper_s}; echo a helper line >&2'])\n")
    root = Path(__file__).resolve().parents[1]
    env = {**{k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)])}
    # timed from the call, not from the start of the process: importing the runtime module (numpy)
    # took a second of the 1.5 s margin the bound left on a loaded 2-core machine
    script = ("import time\n"
              "from recognition.engine.runtime import import_tensorflow\n"
              "started = time.monotonic()\n"
              "import_tensorflow()\nprint(round(time.monotonic() - started, 1))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    # the filter's drain (FILTER_DRAIN_S) and starting two processes, not the helper's whole life
    assert FILTER_DRAIN_S < helper_s - 2
    assert float(done.stdout) < helper_s - 0.5, done.stdout
    assert done.stderr.splitlines() == ["a helper line"], done.stderr


def test_ctrl_c_during_the_import_shows_one_traceback(tmp_path):
    """Ctrl-C reaches the whole foreground process group, the filter too: it printed a
    KeyboardInterrupt traceback of its own (``File "<string>"``) beside the import's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    fake = tmp_path / "tensorflow"
    fake.mkdir()
    started = tmp_path / "started"
    (fake / "__init__.py").write_text(f"import pathlib, time\npathlib.Path({str(started)!r}).touch()\ntime.sleep(30)\n")
    root = Path(__file__).resolve().parents[1]
    env = {**{k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)])}
    # Ctrl-C as at a terminal: a run started in the background of a script (CI's) inherits SIGINT
    # ignored, and Python then keeps it so
    proc = subprocess.Popen([sys.executable, "-c", "import signal\n"
                             "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
                             "from recognition.engine.runtime import import_tensorflow\n"
                             "import_tensorflow()\n"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)

    def filter_ignores_ctrl_c() -> bool:
        """The import is under way and its filter (the child) ignores SIGINT (Linux's /proc)."""
        if not started.exists():
            return False
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        for pid in children:
            status = Path(f"/proc/{pid}/status").read_text()
            ignored = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), 16)
            if ignored & (1 << (signal.SIGINT - 1)):
                return True
        return False

    deadline = time.monotonic() + 60   # a loaded machine (CI) starts processes slowly: a fixed wait was flaky
    while not filter_ignores_ctrl_c():
        assert time.monotonic() < deadline and proc.poll() is None, "the import never got under way"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    err = proc.communicate(timeout=30)[1]
    assert err.count("Traceback") == 1 and err.count("KeyboardInterrupt") == 1, err


def test_whether_a_flatbuffer_is_current_is_known_without_importing_tensorflow(tmp_path):
    """``install_models`` with every model up to date (each ``make run``) spent 4-5 of its 7 s
    importing TensorFlow for the version in the flatbuffer cache's key: that version now comes from
    the installed distribution's metadata. A fresh process, so that nothing imported it before."""
    import subprocess
    import sys

    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "saved_model.pb").write_bytes(b"graph")
    script = ("import sys\n"
              "from recognition.engine import runtime\n"
              f"print(runtime.tflite_cached({str(tmp_path / 'tiny')!r}), 'tensorflow' in sys.modules)\n")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


def test_the_cache_keys_tensorflow_version_is_the_modules_own():
    """The same version the key held when it came from ``tf.__version__``: the flatbuffers cached
    before are still current (not converted again at the next start)."""
    import tensorflow as tf

    assert runtime.tensorflow_version() == tf.__version__
