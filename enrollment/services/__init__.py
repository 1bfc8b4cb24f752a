"""Every write of the enrollment app: people, photos, erasure and index rebuilds.

Functions are ``<entity>_<action>`` with keyword-only, typed arguments. Each runs in one
transaction; file deletions and queued rebuilds happen only after that transaction commits.

Callers import the names from here (``from enrollment import services``; ``services.photo_add``).
They live in one module per part:

- :mod:`.people`: people, their erasure (and the erased staff ids it keeps, and their lifting), and
  erasures applied again after a restore;
- :mod:`.export`: subject access, a ZIP of what the site holds about one person;
- :mod:`.photos`: photo checks, adds, removals, gallery adaptation, photo retention and sweeps;
- :mod:`.index`: index rebuilds (runs, embedding, switching, pruning, scrubbing);
- :mod:`.common`: the base error and the wording of counts and sizes.

A name replaced in a test must be replaced where it is looked up when it is called: a service's
call of another service or helper goes through its own module's name (``photo_add`` calls
``photos.photo_inspect``, ``index_rebuild_now`` calls ``index.index_rebuild``), not through this
package, whose names are copies bound on import. The admin, API, tasks and commands call
``services.<name>`` here. Private helpers and module state (``index._resume_checked``) are not
re-exported.
"""

from .common import (
    STORAGE_FULL_MESSAGES,
    STORAGE_NAMES,
    EnrollmentError,
    StorageFull,
    amount,
    counted,
    database_full,
    storage_free,
    storage_full,
    storage_low,
    storage_paths,
)
from .export import AUDIT_EXPORT_HEADER, EXPORT_README, ExportTooLarge, person_export
from .index import (
    BUSY_RETRY_S,
    EMBED_ERRORS,
    INDEX_WRITERS_LOCK,
    MAX_ATTEMPTS,
    OUTDATED_ASK_AGAIN_S,
    OUTDATED_ASKS,
    OUTDATED_REASON,
    PHOTO_MAX_ATTEMPTS,
    RESUME_AFTER_S,
    RebuildBusy,
    RunTakenOver,
    index_files_sweep,
    index_rebuild,
    index_rebuild_abandon,
    index_rebuild_now,
    index_rebuild_request,
    index_rebuild_resume,
    index_rebuild_resume_due,
    index_refresh_if_outdated,
    stale_after,
)
from .people import (
    ERASED_IDS_COLUMNS,
    Reapplied,
    StaffIdErased,
    erased_staff_id_lift,
    erased_staff_ids_replace,
    erased_staff_ids_rows,
    erasure_lost,
    people_deactivate,
    people_erase,
    people_reactivate,
    person_create,
    person_deactivate,
    person_erase,
    person_erasure_reapply,
    person_lock,
    person_update,
)
from .photos import (
    ADAPTED_PURGE_BATCH,
    ORPHAN_AGE_S,
    ORPHAN_SWEEP_FLOOR,
    PHOTO_FILE_LOCK,
    REFUSALS,
    PhotoInspection,
    PhotoRefused,
    adapted_photo_expiry,
    adapted_photos_purge,
    people_gallery_adaptation_set,
    person_gallery_adaptation_resume,
    person_gallery_adaptation_stop,
    photo_add,
    photo_add_from_checkin,
    photo_choose,
    photo_files_sweep,
    photo_inspect,
    photo_lookalike,
    photo_lookalike_shown,
    photo_lookalike_warning,
    photo_mismatch,
    photo_mismatch_warning,
    photo_remove,
    photo_repeat_warning,
    photo_repeats,
    photo_too_large,
    photos_embed_again,
    photos_inactive_warning,
    photos_masked_only_warning,
)

__all__ = [
    "ADAPTED_PURGE_BATCH", "AUDIT_EXPORT_HEADER", "BUSY_RETRY_S", "EMBED_ERRORS", "ERASED_IDS_COLUMNS", "EXPORT_README",
    "INDEX_WRITERS_LOCK", "MAX_ATTEMPTS", "ORPHAN_AGE_S", "ORPHAN_SWEEP_FLOOR", "OUTDATED_ASKS",
    "OUTDATED_ASK_AGAIN_S", "OUTDATED_REASON", "PHOTO_FILE_LOCK", "PHOTO_MAX_ATTEMPTS", "REFUSALS",
    "RESUME_AFTER_S", "STORAGE_FULL_MESSAGES", "STORAGE_NAMES", "EnrollmentError", "ExportTooLarge", "PhotoInspection",
    "PhotoRefused", "Reapplied", "RebuildBusy", "RunTakenOver", "StaffIdErased", "StorageFull",
    "adapted_photo_expiry", "adapted_photos_purge", "amount",
    "counted", "database_full", "erased_staff_id_lift", "erased_staff_ids_replace", "erased_staff_ids_rows",
    "erasure_lost", "index_files_sweep", "index_rebuild",
    "index_rebuild_abandon",
    "index_rebuild_now", "index_rebuild_request", "index_rebuild_resume", "index_rebuild_resume_due",
    "index_refresh_if_outdated", "person_create",
    "person_deactivate", "person_erase", "person_erasure_reapply", "person_export",
    "person_gallery_adaptation_resume", "person_gallery_adaptation_stop", "person_lock", "person_update",
    "people_deactivate", "people_erase", "people_gallery_adaptation_set", "people_reactivate",
    "photo_add", "photo_add_from_checkin",
    "photo_choose", "photo_files_sweep", "photo_inspect", "photo_lookalike", "photo_lookalike_shown",
    "photo_lookalike_warning", "photo_mismatch", "photo_mismatch_warning", "photo_remove", "photo_repeat_warning",
    "photo_repeats", "photo_too_large",
    "photos_embed_again", "photos_inactive_warning", "photos_masked_only_warning", "stale_after", "storage_free",
    "storage_full", "storage_low", "storage_paths",
]
