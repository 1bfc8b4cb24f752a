"""install_models: integrity checks and clear errors (no network needed)."""

from __future__ import annotations

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
