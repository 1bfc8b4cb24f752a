"""Erasure leaves no file, row or index entry behind; only an audit record with the person's id."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audit.models import AuditEvent
from enrollment import services
from enrollment.models import FacePhoto, IndexVersion, Person, PhotoTemplates
from enrollment.tasks import rebuild_index_task
from recognition.engine.index import Index


def index_files_with(label: str, folder: Path) -> list[Path]:
    return [p for p in folder.glob("*.npz") if label in Index.load(p).identities]


def test_erase_leaves_nothing_but_an_audit_record(make_photo, superuser, settings,
                                                  django_capture_on_commit_callbacks):
    keep = services.person_create(actor=None, full_name="Keep Me", staff_id="K1")
    gone = services.person_create(actor=None, full_name="Erase Me", staff_id="G1")
    make_photo(keep)
    photos = [make_photo(gone) for _ in range(3)]
    files = [Path(p.image.path) for p in photos]
    # two index versions contain the person: the active one and an older one
    for _ in range(2):
        run = services.index_rebuild_request(actor=None, reason="test", force=True)
        rebuild_index_task(run.pk, force=True)
    label, pk = str(gone.pk), gone.pk
    index_dir = Path(settings.MASKNET_INDEX_DIR)
    assert len(index_files_with(label, index_dir)) == 2

    with django_capture_on_commit_callbacks(execute=True):
        services.person_erase(person=gone, actor=superuser)

    assert not Person.objects.filter(pk=pk).exists()
    assert not FacePhoto.objects.filter(person_id=pk).exists()
    assert PhotoTemplates.objects.count() == 1  # the other person's
    assert not any(f.exists() for f in files)
    assert not (Path(settings.MEDIA_ROOT) / "faces" / str(pk)).exists()
    assert index_files_with(label, index_dir) == []
    active = IndexVersion.objects.current()
    assert active.load().identities == {str(keep.pk)} and active.people_count == 1
    assert all(v.file.exists() for v in IndexVersion.objects.all())
    event = AuditEvent.objects.get(action="erase")
    assert (event.object_type, event.object_id, event.actor) == ("enrollment.person", str(pk), "root")
    everything = " ".join(AuditEvent.objects.values_list("summary", flat=True))
    assert "Erase Me" not in everything and "G1" not in everything


def test_erase_then_rebuild_still_excludes_the_person(make_photo, django_capture_on_commit_callbacks):
    a = services.person_create(actor=None, full_name="A", staff_id="A")
    b = services.person_create(actor=None, full_name="B", staff_id="B")
    make_photo(a)
    make_photo(b, centre=np.ones(1024))
    with django_capture_on_commit_callbacks(execute=True):
        services.person_erase(person=b, actor=None)
    run = services.index_rebuild_request(actor=None, reason="after erase", force=True)
    rebuild_index_task(run.pk, force=True)
    assert IndexVersion.objects.current().load().identities == {str(a.pk)}
