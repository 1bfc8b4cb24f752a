"""install_models: integrity checks and clear errors (no network needed)."""

from __future__ import annotations

import json

import pytest

from recognition.engine import install
from recognition.engine.errors import ModelConversionError


def test_missing_npm_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(install.shutil, "which", lambda name: None)
    with pytest.raises(ModelConversionError, match="npm is not installed"):
        install.install_models(tmp_path / "models", log=lambda msg: None)


def test_npm_failure_is_reported(tmp_path, monkeypatch):
    class Failed:
        returncode, stdout, stderr = 1, "", "npm ERR! network request failed"

    monkeypatch.setattr(install.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(install.subprocess, "run", lambda *a, **k: Failed())
    with pytest.raises(ModelConversionError, match="network request failed"):
        install.fetch_package(tmp_path, log=lambda msg: None)


def test_a_tampered_tarball_is_refused(tmp_path, monkeypatch):
    import json

    def fake_pack(cmd, **kwargs):
        (tmp_path / f"vladmandic-human-{install.HUMAN_VERSION}.tgz").write_bytes(b"not the real package")

        class Done:
            returncode, stderr = 0, ""
            stdout = json.dumps([{"integrity": install.HUMAN_INTEGRITY}])
        return Done()

    monkeypatch.setattr(install.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(install.subprocess, "run", fake_pack)
    with pytest.raises(ModelConversionError, match="integrity"):
        install.fetch_package(tmp_path, log=lambda msg: None)
    assert not list(tmp_path.glob("*.tgz"))  # the bad download is not kept


def test_installed_manifest_detects_an_incomplete_install(tmp_path):
    assert install.installed_manifest(tmp_path) is None
    (tmp_path / install.MANIFEST).write_text('{"fingerprint": "stale"}')
    assert install.installed_manifest(tmp_path) is None
    # a current manifest, but a model without its weights (a copy cut short): install again
    (tmp_path / install.MANIFEST).write_text(json.dumps({"fingerprint": install._spec_fingerprint()}))
    for name in install.INSTALLED:
        (tmp_path / name / "variables").mkdir(parents=True)
        (tmp_path / name / "saved_model.pb").write_bytes(b"x")
        (tmp_path / name / "variables" / "variables.index").write_bytes(b"x")
    assert install.installed_manifest(tmp_path) is not None
    (tmp_path / install.INSTALLED[0] / "variables" / "variables.index").unlink()
    assert install.installed_manifest(tmp_path) is None


def test_installs_into_one_folder_take_turns(tmp_path, monkeypatch):
    """Two installs at once (two ``make setup`` runs) would convert into the same temporary folders
    and delete each other's files: the second waits for the first, then finds the models installed."""
    import fcntl
    import threading

    models = tmp_path / "models"
    started, messages = [], []

    def fetch(dest, log=print, package=install.HUMAN):
        started.append(package.name)
        raise ModelConversionError("stop here: only the order is tested")

    monkeypatch.setattr(install, "fetch_package", fetch)
    models.mkdir()
    with open(models / ".install.lock", "a") as held:   # another install holds the folder
        fcntl.flock(held, fcntl.LOCK_EX)
        errors: list[BaseException] = []
        second = threading.Thread(target=lambda: _run(errors, models, messages.append))
        second.start()
        second.join(1.0)
        assert second.is_alive() and not started and any("waiting" in m for m in messages)
        fcntl.flock(held, fcntl.LOCK_UN)
    second.join(10)
    assert started == [install.HUMAN.name] and isinstance(errors[0], ModelConversionError)


def _run(errors: list[BaseException], models, log) -> None:
    try:
        install.install_models(models, log=log)
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        errors.append(exc)


def test_a_failed_upgrade_leaves_no_manifest_behind(tmp_path, monkeypatch):
    """Models are replaced one by one: an install that fails half-way must not leave the earlier
    manifest saying that the mixed set is installed."""
    (tmp_path / install.MANIFEST).write_text('{"fingerprint": "an earlier install"}')
    monkeypatch.setattr(install, "fetch_package", lambda *a, **k: (_ for _ in ()).throw(ModelConversionError("x")))
    with pytest.raises(ModelConversionError):
        install.install_models(tmp_path, force=True, log=lambda msg: None)
    assert not (tmp_path / install.MANIFEST).exists()


@pytest.mark.models
def test_an_engine_refuses_models_another_release_converted(tmp_path, monkeypatch, installed_models):
    """An older conversion (another gain or converter: a node restarted before install_models
    finished) loaded, and a rebuild cached its templates under this release's version for good."""
    from recognition.engine import EngineConfig, ModelsMissing, load_engine

    elsewhere = tmp_path / "models"          # the installed folder under another path: not a cached engine
    elsewhere.symlink_to(installed_models, target_is_directory=True)
    monkeypatch.setattr(install, "descriptor_installed", lambda models_dir, descriptor: False)
    with pytest.raises(ModelsMissing, match="another release"):
        load_engine(elsewhere, EngineConfig.for_descriptor("sface"))
    # without the masked faces' gain (train_adapter --feature-gain after writing a new gain), which
    # gain the conversion carries does not matter: it loads
    assert load_engine(elsewhere, EngineConfig.for_descriptor("sface").with_(masked_gain=False)).chipnet is not None


def test_install_models_into_a_place_that_cannot_hold_them_says_so(tmp_path):
    """A --models-dir that is a file gave a traceback ending in FileExistsError."""
    from django.core.management import CommandError, call_command

    taken = tmp_path / "a-file"
    taken.write_text("not a folder")
    with pytest.raises(CommandError, match="cannot install the models in"):
        call_command("install_models", "--models-dir", str(taken))


def test_install_models_stopped_by_ctrl_c_says_to_run_it_again(tmp_path, monkeypatch):
    """Ctrl-C during a conversion printed TensorFlow's traceback; the manifest, written last, is
    gone meanwhile (an earlier install's too), so the next run converts again."""
    from django.core.management import CommandError, call_command

    (tmp_path / install.MANIFEST).write_text('{"fingerprint": "an earlier install"}')

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(install, "fetch_package", stopped)
    try:   # one escaping would stop the whole test session, not fail this test
        with pytest.raises(CommandError, match="interrupted: the models in .* are not all installed; run it again"):
            call_command("install_models", "--models-dir", str(tmp_path), "--force")
    except KeyboardInterrupt:
        pytest.fail("the KeyboardInterrupt escaped the command")
    assert install.installed_manifest(tmp_path) is None


def _package_tarball(path, files: dict[str, bytes], mode: int = 0o644):
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return path


def test_extract_works_on_a_python_without_tar_filters(tmp_path, monkeypatch):
    """Debian 12's python3.11 (3.11.2, the one deployment.md names) has no ``filter`` argument to
    ``TarFile.extractall`` (3.11.4 added it): ``make setup`` stopped with a TypeError. Its
    signature is put back here; extraction writes only the allow-listed regular files, without the
    archive's modes (a setuid, world-writable file comes out as an ordinary one)."""
    import stat
    import tarfile

    def extractall_3_11_2(self, path=".", members=None, *, numeric_owner=False):
        raise AssertionError("extract must not hand the archive's own metadata to extractall")

    monkeypatch.setattr(tarfile.TarFile, "extractall", extractall_3_11_2)
    tarball = _package_tarball(tmp_path / "pkg.tgz", {"package/LICENSE": b"MIT", "package/models/a.bin": b"\0\1",
                                                      "package/evil.sh": b"#!/bin/sh"}, mode=0o4777)
    out = install.extract(tarball, tmp_path / "out", keep={"package/LICENSE", "package/models/a.bin"})
    assert (out / "LICENSE").read_bytes() == b"MIT" and (out / "models" / "a.bin").read_bytes() == b"\0\1"
    assert not (out / "evil.sh").exists()
    mode = stat.S_IMODE((out / "LICENSE").stat().st_mode)
    assert not mode & (stat.S_ISUID | stat.S_IWOTH | stat.S_IXUSR), oct(mode)
