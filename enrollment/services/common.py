"""What the enrollment services share: their base error, the audit actions they record, and
the wording of counts and sizes in their messages and audit summaries."""

from __future__ import annotations

from audit.models import AuditEvent

Action = AuditEvent.Action


class EnrollmentError(Exception):
    """Base class of the enrollment app's refusals."""



def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``1 photo``, ``3 photos``; ``plural`` where adding an s is wrong (``person``, ``people``)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def amount(n: float, unit: str) -> str:
    """``n`` of ``unit`` as people read it: bytes from 1 MiB on in MiB to a tenth ("1.5 MiB"), a
    whole number of MiB without one ("64 MiB", where "64.0 MiB" read as a rounded figure), else the
    whole number with thousands separators ("524,288 bytes", "40,000,000 pixels"). Only an exact
    multiple loses its tenth: 8 MiB and a few bytes still reads "8.0 MiB", not the "8 MiB" of the
    limit it is over."""
    if unit == "bytes" and n >= 2**20:
        return f"{n // 2**20:.0f} MiB" if n % 2**20 == 0 else f"{n / 2**20:.1f} MiB"
    return f"{n:,.0f} {unit}"
