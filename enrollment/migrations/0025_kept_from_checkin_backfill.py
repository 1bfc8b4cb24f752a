"""Which check-in each photo kept by gallery adaptation before 2026-12-07 came from
(``FacePhoto.kept_from_checkin``, added by 0024 and set for each photo kept since): deleting that
check-in in the admin warns, with a link to the photo, and the photo's page links the check-in,
only when the photo knows it.

Each such photo's ``photo_add`` audit record (written in the same transaction as the photo, so at or
after the photo's creation: a record of an id used before a restore is older) says "added photo #12
(checkin) to person #3: gallery adaptation from check-in #456 (score …)": the check-in is read from
it, for that photo's own person only. A photo whose record is not found (the audit log restored from
an older backup) stays NULL, as before."""

import re

from django.db import migrations

PHOTO = "enrollment.facephoto"
BATCH = 500
FROM_CHECKIN = re.compile(r"^added photo #(\d+) \(checkin\) to person #(\d+): gallery adaptation from check-in #(\d+)")


def fill_kept_from_checkin(apps, schema_editor) -> None:
    """Each kept photo without its check-in given the one its audit record names (module docstring)."""
    FacePhoto = apps.get_model("enrollment", "FacePhoto")
    AuditEvent = apps.get_model("audit", "AuditEvent")
    photos = list(FacePhoto.objects.filter(source="checkin", kept_from_checkin__isnull=True)
                  .values_list("pk", "person_id", "created_at"))
    found = []
    for start in range(0, len(photos), BATCH):
        batch = {str(pk): (person_id, created) for pk, person_id, created in photos[start:start + BATCH]}
        records = (AuditEvent.objects.filter(object_type=PHOTO, object_id__in=list(batch), action="photo_add")
                   .order_by("at", "id").values_list("object_id", "summary", "at"))
        kept: dict[str, int] = {}
        for object_id, summary, at in records.iterator():
            person_id, created = batch[object_id]
            said = FROM_CHECKIN.match(summary)
            if said and at >= created and said[1] == object_id and int(said[2]) == person_id:
                kept[object_id] = int(said[3])
        found += [FacePhoto(pk=int(pk), kept_from_checkin=checkin) for pk, checkin in kept.items()]
    FacePhoto.objects.bulk_update(found, ["kept_from_checkin"], batch_size=BATCH)


class Migration(migrations.Migration):

    dependencies = [
        ("enrollment", "0024_facephoto_kept_from_checkin"),
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(fill_kept_from_checkin, migrations.RunPython.noop),
    ]
