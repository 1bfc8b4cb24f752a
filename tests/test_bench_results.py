"""The benchmarks' shared pieces: the one writer of ``bench/results/<name>.json`` writes what each of
them wrote itself, their tables keep their text, and no benchmark leans on the test package."""

from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture
def provenance(monkeypatch):
    """``bench/provenance.py``, imported as the benchmarks import it (bench/ on sys.path)."""
    monkeypatch.syspath_prepend(str(BENCH))
    return importlib.import_module("provenance")


# a result as the benchmarks hold one: numpy scalars beside plain numbers, nested rows, text
SAMPLE_META = {"seconds": 12.3, "split": "DevTest", "provenance": {"commit": "abc", "uncommitted_files": 0}}
SAMPLE_RESULTS = {"SFace + mirror": {"unmasked": {"accuracy": np.float64(0.975), "tar_at_far_1e-2": np.float32(0.5),
                                                  "n_pairs": 600, "failed_images": 0},
                                     "identification": None, "rows": [1, 2.5, "± 3"]}}


def test_results_are_written_byte_for_byte_as_the_benchmarks_wrote_them(provenance, tmp_path):
    out = provenance.write_results("example", SAMPLE_META, SAMPLE_RESULTS, tmp_path)
    assert out == tmp_path / "bench" / "results" / "example.json" == provenance.results_path("example", tmp_path)
    # the lines each benchmark wrote before (bench/ablation.py, bench/descriptors.py, bench/whitening.py...)
    before = json.dumps({"meta": SAMPLE_META, "results": SAMPLE_RESULTS}, indent=2, default=float)
    assert out.read_bytes() == before.encode()
    assert json.loads(out.read_text())["results"]["SFace + mirror"]["unmasked"]["tar_at_far_1e-2"] == 0.5


def test_plain_documents_and_the_speed_benchmarks_trailing_newline(provenance, tmp_path):
    plain = {"args": {"people": 60}, "rows": [{"share": 0.5, "found": 3}], "seconds": 1.0}
    # bench/cut_faces.py, detection.py, partial_faces.py, chips.py, maskhead.py and voting.py wrote no default
    cut = provenance.write_json(provenance.results_path("cut_faces", tmp_path), plain)
    assert cut.read_text() == json.dumps(plain, indent=2)
    # bench/speed.py, kiosk.py and latest.py end their files with a newline, into a folder made for them
    speed = provenance.write_json(tmp_path / "elsewhere" / "speed.json", plain, newline=True)
    assert speed.read_text() == json.dumps(plain, indent=2) + "\n"
    assert speed.read_text() == ('{\n  "args": {\n    "people": 60\n  },\n  "rows": [\n    {\n      "share": 0.5,\n'
                                 '      "found": 3\n    }\n  ],\n  "seconds": 1.0\n}\n')


def test_the_ablation_and_descriptor_tables_keep_their_layout(monkeypatch):
    """``descriptors.table`` is the ablation's table with its own first header and an empty cell for a row
    without identification figures (the ablation writes "–")."""
    monkeypatch.syspath_prepend(str(BENCH))
    ablation, descriptors = importlib.import_module("ablation"), importlib.import_module("descriptors")
    v = {"accuracy": 0.9712, "accuracy_std": 0.0123, "tar_at_far_1e-2": 0.95}
    i = {"rank1": 0.9, "rank1_std": 0.031, "fnir_at_fpir_1e-2": 0.15, "fnir_at_fpir_1e-2_std": 0.07}
    results = {"the product": {**dict.fromkeys(ablation.SETS, v), "identification": i},
               "no identification": dict.fromkeys(ablation.SETS, v)}
    cells = " | ".join(["97.1% ± 1.2 / 95.0%"] * 3)
    head = (" | unmasked: accuracy ± std / TAR@FAR1e-2 | one side masked: accuracy ± std / TAR@FAR1e-2 "
            "| both masked: accuracy ± std / TAR@FAR1e-2 "
            "| identification, masked probes: rank-1 ± std / FNIR@FPIR1e-2 ± std |\n|---|---|---|---|---|\n")
    rows = f"| the product | {cells} | 90.0% ± 3.1 / 15.0% ± 7.0 |\n| no identification | {cells} | "
    assert ablation.table(results) == "| levers" + head + rows + "– |"
    assert descriptors.table(results) == "| descriptor and levers" + head + rows + " |"


def test_no_benchmark_imports_the_test_package():
    """What a benchmark and the tests both need lives in bench/ (or the product), which the tests may
    import: bench/cut_faces.py took its kiosk frames from tests/recognition/faces.py."""
    leaning = []
    for path in sorted(BENCH.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            leaning += [f"{path.name}: {n}" for n in names if n == "tests" or n.startswith("tests.")]
    assert not leaning


def _speed_doc(descriptor: str, p50: float) -> dict:
    """The parts of a ``bench/speed.py`` document that ``latest.json`` reads."""
    search = {"search": {"p50_ms": 1.0}}
    return {"descriptor": descriptor, "started": "2026-12-07T10:00:00Z", "machine": {"load_avg": 1.0},
            "engine": {"p50_ms": p50, "p95_ms": p50 + 10, "per_s": 1000 / p50},
            "face_recognition": {"p50_ms": 4 * p50},
            "index_search": {"1000": search, "10000": search, "100000": search}}


def test_latest_reports_the_engine_the_site_runs(provenance, tmp_path, monkeypatch):
    """``make bench`` measured FaceRes + ResNet by default (``speed.json``) and ``latest.json`` took
    its engine figures from there, beside kiosk figures of the site's SFace: the engine keys now come
    from the site's descriptor's file, which ``bench/speed.py`` writes by default. Found by a
    helper's audit of issue 6's contract."""
    from django.conf import settings

    latest = importlib.import_module("latest")
    speed = importlib.import_module("speed")
    monkeypatch.delenv("MASKNET_DESCRIPTOR", raising=False)
    assert provenance.site_descriptor() == settings.MASKNET_DESCRIPTOR == "sface"
    measured = []
    monkeypatch.setattr(speed, "run", lambda rounds, dlib, descriptor: measured.append(descriptor) or {})
    monkeypatch.setattr(speed, "print_table", lambda doc: None)
    monkeypatch.setattr("sys.argv", ["speed.py", "--out", str(tmp_path / "run.json")])
    speed.main()
    assert measured == ["sface"]   # bench/speed.py without --descriptor: the site's
    provenance.write_json(tmp_path / "speed.json", _speed_doc("faceres+resnet", 60.0), newline=True)
    provenance.write_json(tmp_path / "speed-sface.json", _speed_doc("sface", 40.0), newline=True)
    doc = latest.collect(tmp_path)
    assert doc["descriptor"] == "sface" and doc["engine_p50_ms"] == 40.0 and doc["speedup_vs_face_recognition"] == 4.0
    assert set(latest.CONTRACT) <= set(doc)
    monkeypatch.setenv("MASKNET_DESCRIPTOR", "faceres+resnet")
    assert latest.collect(tmp_path)["engine_p50_ms"] == 60.0
    (tmp_path / "speed-sface.json").unlink()
    monkeypatch.delenv("MASKNET_DESCRIPTOR")
    doc = latest.collect(tmp_path)   # the site's engine not measured: null, never another engine's
    assert doc["engine_p50_ms"] is None and set(latest.CONTRACT) <= set(doc)
