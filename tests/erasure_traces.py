"""Looking for what is left of an erased person, as an auditor would: every column of every table
(sessions decoded), a folder's files (index versions read as arrays), cache values and log text,
searched for the person's id, name and staff id, their photos' file names, digests and bytes, their
snapshots and vectors close to their templates. Shared by the erasure tests
(``tests/recognition/test_erasure_end_to_end.py``, with the real engine, and
``tests/enrollment/test_erasure_inventory.py``, every store of a person's data without it)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from django.apps import apps
from django.contrib.sessions.models import Session
from django.db import connection

from enrollment.models import FacePhoto, IndexVersion, Person, PhotoTemplates
from recognition.models import CheckIn

# cosine similarity above which a stored vector is taken for one of the person's (their own photos'
# templates score 0.6-1.0 against each other; other people's, below 0.3)
CLOSE = 0.5
# texts of the person shorter than this are not looked for inside binary data, where they occur by
# chance (a staff id "E-1" is three bytes; their name, beside it in the same rows, is looked for)
BINARY_TEXT_MIN = 8


def unit(v: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (any bytes read as floats: overflowing rows count as nothing)."""
    v = np.atleast_2d(np.asarray(v, np.float32)).astype(np.float64)
    with np.errstate(all="ignore"):
        return np.nan_to_num(v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12))


class Traces:
    """What is known of the person before the erasure, and where it is looked for afterwards.

    ``bare_id``: the person's id is distinctive (a number no other row, count or size of the test
    holds), so it is looked for as a whole number anywhere, not only as ``#12``: an audit record's
    ``object_id``, a foreign key held as text, a file name. ``texts``: more of the person's words
    to look for besides the name and staff id (parts of the name, a phrase of their notes)."""

    def __init__(self, person: Person, *, bare_id: bool = False, texts: tuple[str, ...] = ()) -> None:
        self.pk = person.pk
        self.bare_id = bare_id
        self.texts = {person.full_name, person.staff_id, *texts}
        self.files: dict[str, bytes] = {}     # photo file name -> bytes
        self.digests: set[str] = set()
        self.snapshots: list[bytes] = []
        self.vectors = np.zeros((0, 0), np.float32)
    def collect(self) -> None:
        """Read everything the site holds of the person now (before the erasure)."""
        for photo in FacePhoto.objects.filter(person_id=self.pk):
            self.files[photo.image.name] = Path(photo.image.path).read_bytes()
            self.digests.add(photo.sha256)
        self.snapshots = [bytes(s) for s in CheckIn.objects.filter(person_id=self.pk, snapshot__isnull=False)
                          .values_list("snapshot", flat=True)]
        vectors = [t.arrays()[0] for t in PhotoTemplates.objects.filter(photo__person_id=self.pk)]
        index = IndexVersion.objects.current().load()
        vectors.append(index.vectors[index.labels == str(self.pk)])
        self.vectors = unit(np.concatenate(vectors))

    def id_pattern(self) -> re.Pattern:
        """``#12`` (not ``#120``); with ``bare_id``, the whole number anywhere."""
        return re.compile(rf"(?<!\d){self.pk}(?!\d)" if self.bare_id else rf"#{self.pk}(?!\d)")

    def in_text(self, text: str, binary: bool = False) -> list[str]:
        """What of the person ``text`` names. ``binary``: text decoded from binary data (a JPEG, a
        blob, the database file), where the id ("#12") and texts shorter than
        :data:`BINARY_TEXT_MIN` turn up by chance (a JPEG of 100 KB holds "#" and a digit 30 times):
        those are looked for in text only (a distinctive ``bare_id`` is looked for in both)."""
        texts = [t for t in self.texts if not binary or len(t) >= BINARY_TEXT_MIN]
        found = [t for t in texts if t.lower() in text.lower()]
        found += [f"file name {Path(n).stem}" for n in self.files if Path(n).stem in text]
        found += [f"photo digest {d[:12]}" for d in self.digests if d in text]
        if f"faces/{self.pk}/" in text:
            found.append("their media folder")
        if (not binary or self.bare_id) and self.id_pattern().search(text):
            found.append(f"#{self.pk}")
        return found

    def in_bytes(self, data: bytes) -> list[str]:
        found = []
        for name, content in self.files.items():
            middle = content[len(content) // 2:len(content) // 2 + 256]
            if middle and middle in data:
                found.append(f"bytes of photo {Path(name).stem}")
        found += ["bytes of a check-in snapshot" for s in self.snapshots if s[len(s) // 2:len(s) // 2 + 256] in data]
        found += self.close_vectors(data)
        found += self.in_text(data.decode("utf-8", errors="replace"), binary=True)   # text inside binary data too
        return found

    def close_vectors(self, data: bytes | np.ndarray) -> list[str]:
        """Float32 rows of the templates' width (in any blob, at any 4-byte offset) close to theirs."""
        dim = self.vectors.shape[1]
        if isinstance(data, np.ndarray):
            arrays = [np.asarray(data, np.float32).reshape(-1, dim)] if data.size and data.size % dim == 0 else []
        else:
            arrays = []
            for offset in range(0, min(len(data), 4 * dim), 4):
                usable = (len(data) - offset) // (4 * dim) * 4 * dim
                if usable:
                    rows = np.frombuffer(data, np.float32, count=usable // 4, offset=offset).reshape(-1, dim)
                    arrays.append(np.nan_to_num(rows, nan=0.0, posinf=0.0, neginf=0.0))
        best = max((float((unit(rows) @ self.vectors.T).max()) for rows in arrays if len(rows)), default=-1.0)
        return [f"a vector {best:.2f} close to their templates"] if best > CLOSE else []


def database_traces(traces: Traces) -> list[tuple[str, str, str]]:
    """``(table, column, what)`` for every value in the database that holds something of the person:
    every column of every table (Django's too), sessions decoded, foreign keys to a person by id."""
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            columns = [c.name for c in connection.introspection.get_table_description(cursor, table)]
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 - the schema's own names
            for row in cursor.fetchall():
                for column, value in zip(columns, row, strict=True):
                    if isinstance(value, (bytes, bytearray, memoryview)):
                        what = traces.in_bytes(bytes(value))
                    elif isinstance(value, str):
                        what = traces.in_text(value)
                    elif isinstance(value, (dict, list)):   # JSON columns, as PostgreSQL's driver reads them
                        what = traces.in_text(json.dumps(value))
                    else:
                        what = []
                    found += [(table, column, w) for w in what]
    for session in Session.objects.all():
        found += [("django_session", "session_data (decoded)", w)
                  for w in traces.in_text(json.dumps(session.get_decoded(), default=str))]
    for model in apps.get_models():
        for field in model._meta.fields:
            if field.is_relation and field.related_model is Person:
                if model.objects.filter(**{field.attname: traces.pk}).exists():
                    found.append((model._meta.db_table, field.column, f"a row of person #{traces.pk}"))
    return found


def folder_traces(traces: Traces, folder: Path) -> list[tuple[str, str]]:
    """``(file, what)`` for every file under ``folder`` holding something of the person (an index
    version's arrays are read as arrays: labels and vectors)."""
    found = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        what = traces.in_text(str(path.relative_to(folder)))
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                labels = data["labels"].astype(str).tolist()
                if str(traces.pk) in labels:
                    what.append(f"index label {traces.pk}")
                what += traces.close_vectors(data["vectors"])
        else:
            what += traces.in_bytes(path.read_bytes())
        found += [(str(path.relative_to(folder)), w) for w in what]
    return found


