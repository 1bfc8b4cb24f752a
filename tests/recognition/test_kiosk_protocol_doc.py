"""docs/kiosk.md's "The socket's messages" against the consumer: every message type, error code and
close code the kiosk socket can send is listed there, and nothing it no longer sends.

README sends client writers to docs/kiosk.md for the protocol, which named 6 of the 11 error codes
(the rest were in the consumer's docstring alone); a code added to the consumer fails here until
the docs say what it means."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from recognition import consumers
from recognition.engine import errors

ROOT = Path(__file__).resolve().parents[2]


def _code(path: Path) -> str:
    """``path``'s source after its module docstring: the docstring lists every message type and error
    code too, so a scan that read it found a code the consumer no longer sent as still sent."""
    text = path.read_text()
    return "\n".join(text.splitlines()[ast.parse(text).body[0].end_lineno:])


SOURCE = _code(ROOT / "recognition" / "consumers.py")


def _section() -> str:
    text = (ROOT / "docs" / "kiosk.md").read_text()
    start = text.index("## The socket's messages")
    return text[start:text.index("\n## ", start + 1)]


def _first_column(table_head: str) -> set[str]:
    """The backquoted names in the first column of the table whose header row starts ``table_head``
    (``a` / `b`` gives both)."""
    lines = _section().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(table_head))
    names = set()
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        names |= set(re.findall(r"`(\w+)`", line.split("|")[1]))
    return names


def _sent_types() -> set[str]:
    # a JSON message the consumer builds in code (not the channel layer's dotted event names)
    return {t for t in re.findall(r'\{"type": "([\w.]+)"', SOURCE) if "." not in t}


def _sent_error_codes() -> set[str]:
    codes = set(re.findall(r'_error\(seq, "(\w+)"', SOURCE)) | set(re.findall(r'"code": "(\w+)"', SOURCE))
    codes |= set(re.findall(r'error="(\w+)"', SOURCE)) | set(consumers.ERROR_MESSAGES)
    # the engine's errors reach the page by their code (analyze_frame), all but "no face", which is a
    # "searching" result
    engine = {errors.EngineError, *errors.EngineError.__subclasses__()} - {errors.NoFaceFound}
    return codes | {cls.code for cls in engine}


def test_every_message_type_the_socket_sends_is_documented():
    sent = _sent_types()
    assert {"hello", "result", "dropped", "error", "revoked", "replaced", "kiosk"} <= sent   # the scan finds them
    assert _first_column("| `type`") == sent


def test_every_error_code_the_socket_sends_is_documented():
    sent = _sent_error_codes()
    assert {"rate_limited", "unavailable", "internal", "unreadable_image", "model_conversion_error"} <= sent
    assert _first_column("| error `code`") == sent


def test_every_close_code_is_documented():
    codes = {value for name, value in vars(consumers).items() if name.startswith("CLOSE_")}
    assert codes == {4401, 4403, 4409, 4013, 4429}
    documented = {int(n) for n in re.findall(r"^\| (\d{4}) \|", _section(), re.M)}
    assert documented == codes


def test_the_scan_reads_the_consumers_code_not_its_docstring():
    assert consumers.__doc__ and "Answers (JSON text messages)" in consumers.__doc__
    assert "Answers (JSON text messages)" not in SOURCE and "class KioskConsumer" in SOURCE
