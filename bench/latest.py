"""Collect the speed and kiosk benchmark results into ``bench/results/latest.json``.

Usage: ``python bench/latest.py`` (run by ``make bench`` / ``make bench-speed`` after
``bench/speed.py`` and ``bench/kiosk.py``). The keys ``engine_p50_ms``, ``engine_p95_ms``,
``face_recognition_p50_ms``, ``speedup_vs_face_recognition``, ``kiosk_p95_ms_1``,
``kiosk_fps_8``, ``kiosk_rss_growth_mb_8`` and ``search_ms_100k`` are a contract (always
present; ``null`` when the part that measures them did not run). The engine's figures are those of
the site's descriptor (``MASKNET_DESCRIPTOR``, SFace when unset: ``speed-sface.json``), named in
``descriptor``; until 2026-12-07 they were FaceRes + ResNet's (``speed.json``), which the site no
longer runs, beside kiosk figures of SFace.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import kiosk  # noqa: E402
import speed  # noqa: E402
from provenance import descriptor_suffix, site_descriptor, write_json  # noqa: E402

RESULTS = REPO / "bench" / "results"
CONTRACT = ("engine_p50_ms", "engine_p95_ms", "face_recognition_p50_ms", "speedup_vs_face_recognition",
            "kiosk_p95_ms_1", "kiosk_fps_8", "kiosk_rss_growth_mb_8", "search_ms_100k")


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def collect(results: Path = RESULTS) -> dict:
    """The contract keys first, then the other summary figures and where they came from."""
    doc: dict = dict.fromkeys(CONTRACT)
    sources = {}
    descriptor = site_descriptor()
    speed_doc = _read(results / f"speed{descriptor_suffix(descriptor)}.json")
    if speed_doc and speed_doc.get("descriptor", descriptor) != descriptor:
        speed_doc = None   # another engine's figures under this name: not the site's
    doc["descriptor"] = descriptor
    if speed_doc:
        doc.update(speed.summary(speed_doc))
        sources["speed"] = {"started": speed_doc["started"], "load_avg": speed_doc["machine"]["load_avg"],
                            "load_avg_end": speed_doc["machine"].get("load_avg_end")}
    kiosk_doc = _read(results / "kiosk.json")
    if kiosk_doc:
        doc.update(kiosk.summary(kiosk_doc))
        sources["kiosk"] = {"started": kiosk_doc["started"], "load_avg": kiosk_doc["machine"]["load_avg"],
                            "load_avg_end": kiosk_doc["machine"].get("load_avg_end")}
    machine = (speed_doc or kiosk_doc or {}).get("machine", {})
    doc["machine"] = {k: machine.get(k) for k in ("cpu", "cores", "mem_gb", "gpu")}
    doc["sources"] = sources
    doc["written"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    doc["load_avg_now"] = [round(x, 2) for x in os.getloadavg()]
    return doc


def main() -> None:
    doc = collect()
    out = write_json(RESULTS / "latest.json", doc, newline=True)
    for k in CONTRACT:
        print(f"{k:<30}{doc[k]}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
