"""recognition.services: kiosk pairing (hashed, one-time), cooldown windows enforced by the
database, check-in outcomes and their audit rows."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from recognition import services
from recognition.models import CheckIn, Kiosk, token_digest

pytestmark = pytest.mark.django_db(transaction=True)


def test_tokens_and_pairing_codes_are_stored_only_as_digests(transactional_db):
    kiosk, code = services.kiosk_create(actor=None, name="Front door", location="Hall")
    assert kiosk.pairing_hash == token_digest(code) and code not in str(Kiosk.objects.values().get())
    assert Kiosk.objects.for_pairing_code(code) == kiosk
    paired, token = services.kiosk_pair(code=code)
    row = Kiosk.objects.values().get()
    assert row["token_hash"] == token_digest(token) and token not in str(row)
    assert row["pairing_hash"] == "" and paired.paired_at is not None
    assert Kiosk.objects.for_device_token(token) == kiosk
    assert services.kiosk_pair(code=code) is None          # one-time
    assert AuditEvent.objects.filter(object_type="recognition.kiosk", action="create").exists()


def test_expired_codes_and_inactive_kiosks_do_not_pair(transactional_db, settings):
    settings.MASKNET_KIOSK_PAIRING_TTL_S = -1
    _, code = services.kiosk_create(actor=None, name="Old")
    assert services.kiosk_pair(code=code) is None
    settings.MASKNET_KIOSK_PAIRING_TTL_S = 3600
    kiosk, code = services.kiosk_create(actor=None, name="Off", active=False)
    assert code is None and not kiosk.pairing_hash          # no link that could never work
    with pytest.raises(services.KioskInactive):
        services.kiosk_pairing_issue(kiosk=kiosk, actor=None)
    services.kiosk_update(kiosk=kiosk, actor=None, active=True)
    assert services.kiosk_pair(code=services.kiosk_pairing_issue(kiosk=kiosk, actor=None)) is not None


def test_deactivating_a_kiosk_voids_its_token_and_link(paired):
    """docs/kiosk.md: unticking *active* voids the device's token; activating the kiosk again does
    not bring back a lost device (nor an unused link): it needs a new pairing."""
    kiosk, token = paired
    link = services.kiosk_pairing_issue(kiosk=kiosk, actor=None)
    services.kiosk_update(kiosk=kiosk, actor=None, active=False)
    assert not kiosk.paired and not kiosk.pairing_hash
    services.kiosk_update(kiosk=kiosk, actor=None, active=True)
    assert Kiosk.objects.for_device_token(token) is None
    assert services.kiosk_pair(code=link) is None


def test_a_kiosk_change_is_stored_trimmed_and_a_name_of_spaces_alone_refused(paired):
    """The admin's form and the API trim a kiosk's text before the service sees it; another caller
    (a command, a script) stored " Lobby " beside "Lobby", or a name of spaces alone. The service
    trims as its create does: the same text with spaces is no change, and a blank name its refusal."""
    from django.core.exceptions import ValidationError

    kiosk, _ = paired
    services.kiosk_update(kiosk=kiosk, actor=None, name="  Lobby \n", location=" Hall ", site=" annex\t",
                          language=" pt ")
    fields = ("name", "location", "site", "language")
    assert Kiosk.objects.values(*fields).get(pk=kiosk.pk) == {"name": "Lobby", "location": "Hall", "site": "annex",
                                                              "language": "pt"}
    changes = AuditEvent.objects.for_object("recognition.kiosk", kiosk.pk).filter(summary__startswith="updated")
    assert changes.count() == 1
    services.kiosk_update(kiosk=kiosk, actor=None, name="Lobby ", location="Hall  ")   # no change, no record
    assert changes.count() == 1
    for blank in ("   ", "\u3000"):
        with pytest.raises(ValidationError) as refused:
            services.kiosk_update(kiosk=Kiosk.objects.get(pk=kiosk.pk), actor=None, name=blank)
        assert set(refused.value.message_dict) == {"name"}
    assert Kiosk.objects.get(pk=kiosk.pk).name == "Lobby" and changes.count() == 1


def test_a_new_link_replaces_the_unused_one(transactional_db):
    kiosk, first = services.kiosk_create(actor=None, name="K")
    second = services.kiosk_pairing_issue(kiosk=kiosk, actor=None)
    assert services.kiosk_pair(code=first) is None
    assert services.kiosk_pair(code=second) is not None


def test_revoke_voids_the_device_token(paired):
    kiosk, token = paired
    services.kiosk_revoke(kiosk=kiosk, actor=None)
    assert Kiosk.objects.for_device_token(token) is None and not Kiosk.objects.get().paired


def test_each_handshake_takes_the_next_number_of_its_kiosk_and_marks_it_seen(paired):
    """``kiosk_connect`` orders a kiosk's sockets by the database, not by a web node's clock: each
    handshake of the kiosk gets a higher number than the last (other kiosks keep their own count),
    and is its "last seen". A token that opens no kiosk counts nothing and writes nothing."""
    kiosk, token = paired
    other, other_token = services.kiosk_pair(code=services.kiosk_create(actor=None, name="Side door")[1])
    assert kiosk.connection_seq == 0 and kiosk.last_seen_at is None
    assert [services.kiosk_connect(token=token).connection_seq for _ in range(3)] == [1, 2, 3]
    assert services.kiosk_connect(token=other_token).connection_seq == 1
    kiosk.refresh_from_db()
    assert kiosk.connection_seq == 3 and kiosk.last_seen_at is not None
    for unknown in (None, "", "not-a-token", "x" * 500):
        with CaptureQueriesContext(connection) as queries:
            assert services.kiosk_connect(token=unknown) is None
        # no UPDATE, no transaction: made-up cookies must not take SQLite's write lock
        assert not [q["sql"] for q in queries if not q["sql"].lstrip().upper().startswith("SELECT")], queries
    services.kiosk_revoke(kiosk=kiosk, actor=None)
    assert services.kiosk_connect(token=token) is None
    assert list(Kiosk.objects.values_list("name", "connection_seq").order_by("name")) == [
        ("Front door", 3), ("Side door", 1)]


def test_concurrent_handshakes_of_a_kiosk_never_take_the_same_number(paired):
    """Handshakes racing on several web nodes (threads with their own connections here) each get a
    number of their own: the increment and its read are one transaction on the locked row."""
    _kiosk, token = paired
    threads_n, each = 4, 5
    barrier = threading.Barrier(threads_n)
    taken, errors = [], []

    def handshakes():
        try:
            barrier.wait(5)
            taken.extend(services.kiosk_connect(token=token).connection_seq for _ in range(each))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=handshakes) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert sorted(taken) == list(range(1, threads_n * each + 1))


def test_the_previous_releases_insert_of_a_kiosk_still_works_after_migrate(transactional_db):
    """The upgrade runs migrate while the previous release still serves (docs/deployment.md): its
    INSERT of a kiosk, without ``connection_seq``, gets the database's default and counts from there."""
    with connections["default"].cursor() as cursor:
        cursor.execute("INSERT INTO recognition_kiosk (name, location, site, active, token_hash, pairing_hash,"
                       " created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                       ["Old release", "", "main", True, token_digest("old-token"), "", timezone.now()])
    assert Kiosk.objects.get(name="Old release").connection_seq == 0
    assert services.kiosk_connect(token="old-token").connection_seq == 1


def test_revoke_says_whether_a_device_was_paired_and_audits_only_real_revocations(paired):
    """A kiosk never paired has no device to revoke: no "revoked the device" row. An unused link
    is voided all the same, and audited as that."""
    kiosk, _token = paired
    revocations = AuditEvent.objects.filter(object_type="recognition.kiosk", action="deactivate")
    assert services.kiosk_unpair(kiosk=kiosk, actor=None) is True and not kiosk.paired
    assert [e.summary for e in revocations.all()] == [f"revoked the device of kiosk #{kiosk.pk}"]
    assert services.kiosk_unpair(kiosk=kiosk, actor=None) is False      # revoked already
    spare, _ = services.kiosk_create(actor=None, name="Spare", with_link=False)
    assert services.kiosk_unpair(kiosk=spare, actor=None) is False
    assert revocations.count() == 1
    linked, code = services.kiosk_create(actor=None, name="Linked")
    assert services.kiosk_unpair(kiosk=linked, actor=None) is False
    assert services.kiosk_pair(code=code) is None and not linked.pairing_hash
    assert revocations.filter(object_id=str(linked.pk)).get().summary == (
        f"voided the unused pairing link of kiosk #{linked.pk} (no device was paired)")
    # kiosk_revoke (the API's) still answers with the refreshed kiosk
    assert services.kiosk_revoke(kiosk=spare, actor=None) == spare and revocations.count() == 2


def test_cooldown_window_by_day_in_the_site_time_zone(settings):
    settings.TIME_ZONE = "Europe/Paris"
    late = datetime(2026, 11, 30, 23, 30, tzinfo=ZoneInfo("UTC"))    # 00:30 on 1 December in Paris
    with timezone.override("Europe/Paris"):
        window, day = services.cooldown_window(site="main", at=late)
    assert window == "main|2026-12-01" and day.isoformat() == "2026-12-01"


def test_cooldown_window_in_minutes(settings):
    settings.MASKNET_CHECKIN_COOLDOWN = "30"
    at = datetime(2026, 11, 30, 8, 10, tzinfo=ZoneInfo("UTC"))
    w1, _ = services.cooldown_window(site="main", at=at)
    w2, _ = services.cooldown_window(site="main", at=at + timedelta(minutes=15))
    w3, _ = services.cooldown_window(site="main", at=at + timedelta(minutes=25))
    assert w1 == w2 != w3 and w1.startswith("main|30m|")
    settings.MASKNET_CHECKIN_COOLDOWN = "soon"
    with pytest.raises(Exception, match="MASKNET_CHECKIN_COOLDOWN"):
        services.cooldown_window(site="main", at=at)


def test_minute_windows_never_span_two_local_days(settings):
    """A 24-hour window from the epoch would put 20:30 and the next morning's 08:00 in New York in
    one window: the second day's arrival would be 'already checked in' and missing from its list."""
    settings.TIME_ZONE = "America/New_York"
    settings.MASKNET_CHECKIN_COOLDOWN = "1440"
    evening = datetime(2026, 11, 30, 20, 30, tzinfo=ZoneInfo("America/New_York"))
    w1, d1 = services.cooldown_window(site="main", at=evening)
    w2, d2 = services.cooldown_window(site="main", at=evening + timedelta(hours=11, minutes=30))
    assert (d1.day, d2.day) == (30, 1) and w1 != w2
    settings.MASKNET_CHECKIN_COOLDOWN = "60"
    w3, _ = services.cooldown_window(site="main", at=evening.replace(hour=23, minute=50))
    w4, _ = services.cooldown_window(site="main", at=evening.replace(hour=23, minute=55))
    assert w3 == w4 and w3.startswith("main|60m|2026-11-30|")
    # counted from local midnight, not from the epoch (whose days begin at 19:00 in New York)
    settings.MASKNET_CHECKIN_COOLDOWN = "1440"
    morning, late = (evening.replace(hour=8, minute=0), evening.replace(hour=19, minute=30))
    assert services.cooldown_window(site="main", at=morning) == services.cooldown_window(site="main", at=late)
    settings.MASKNET_CHECKIN_COOLDOWN = "90"   # 07:30-09:00 local
    w5, _ = services.cooldown_window(site="main", at=evening.replace(hour=7, minute=40))
    w6, _ = services.cooldown_window(site="main", at=evening.replace(hour=8, minute=55))
    assert w5 == w6


def test_the_repeated_autumn_hour_is_a_window_of_its_own(settings):
    """Paris, 2026-10-25: 02:10 summer time and 02:10 winter time, an hour apart, had one key: a
    30-minute window lasted an hour and a half and the second arrival was "already checked in"."""
    settings.TIME_ZONE = "Europe/Paris"
    settings.MASKNET_CHECKIN_COOLDOWN = "30"
    first, second = (datetime(2026, 10, 25, h, 10, tzinfo=ZoneInfo("UTC")) for h in (0, 1))
    w1, d1 = services.cooldown_window(site="main", at=first)
    w2, d2 = services.cooldown_window(site="main", at=second)
    assert w1 != w2 and d1 == d2 and w2 == w1 + "|2nd"
    same = services.cooldown_window(site="main", at=second + timedelta(minutes=10))[0]
    assert same == w2   # within the second pass's window as before
    settings.MASKNET_CHECKIN_COOLDOWN = "day"
    assert services.cooldown_window(site="main", at=first) == services.cooldown_window(site="main", at=second)


@pytest.mark.parametrize("minutes", [90, 120, 720])
def test_a_window_reaching_outside_the_repeated_hour_keeps_one_key_through_it(settings, minutes):
    """New York, 2026-11-01: with windows longer than the repeated hour, its second pass had a key of
    its own inside a window that went on after it: a person checked in at 00:30 was checked in again
    at 01:15 the second time round, and at 02:30 the first window's key was back. Found by a helper's
    review. A window wholly inside the hour (60 minutes: 01:00-02:00) is still one of its own."""
    settings.TIME_ZONE = "America/New_York"
    settings.MASKNET_CHECKIN_COOLDOWN = str(minutes)
    utc = ZoneInfo("UTC")
    before = datetime(2026, 11, 1, 4, 30, tzinfo=utc)            # 00:30 EDT
    second_pass = datetime(2026, 11, 1, 6, 15, tzinfo=utc)       # 01:15 EST, the hour again
    assert timezone.localtime(second_pass).fold == 1
    keys = [services.cooldown_window(site="main", at=t)[0] for t in (before, second_pass)]
    assert keys[0] == keys[1] and "2nd" not in keys[1], keys
    settings.MASKNET_CHECKIN_COOLDOWN = "60"
    first_pass = datetime(2026, 11, 1, 5, 15, tzinfo=utc)        # 01:15 EDT
    one, two = (services.cooldown_window(site="main", at=t)[0] for t in (first_pass, second_pass))
    assert two == one + "|2nd"


def test_the_days_last_window_cut_at_midnight_in_the_repeated_hour_is_one_of_its_own(settings):
    """Cairo, 2026-10-29, clocks back from 24:00 to 23:00: 50-minute windows leave 23:20-24:00 as the
    day's last, wholly in the repeated hour; measured to 00:10 it lost its second-pass key, and an
    arrival an hour after the first was "already checked in". Found by a helper's review."""
    settings.TIME_ZONE = "Africa/Cairo"
    settings.MASKNET_CHECKIN_COOLDOWN = "50"
    zone = ZoneInfo("Africa/Cairo")
    first, second = (datetime(2026, 10, 29, 23, 50, tzinfo=zone).replace(fold=f) for f in (0, 1))
    assert first.utcoffset() != second.utcoffset()   # the hour happens twice there
    one, two = (services.cooldown_window(site="main", at=t)[0] for t in (first, second))
    assert two == one + "|2nd", (one, two)


def _record(kiosk, person, **kwargs):
    return services.checkin_record(person_id=person.pk, kiosk=kiosk, score=0.8, threshold=0.42, masked=False,
                                   frames=3, index_version=1, **kwargs)


def test_one_check_in_per_window_and_the_database_enforces_it(paired, person, settings):
    kiosk, _ = paired
    first = _record(kiosk, person)
    second = _record(kiosk, person)
    assert first.created and not second.created and second.checkin.pk == first.checkin.pk
    assert first.first_name == "Eileen" and first.greeting_name == "Eileen Collins"
    settings.MASKNET_KIOSK_GREETING = "first"
    assert first.greeting_name == "Eileen"
    with pytest.raises(IntegrityError), transaction.atomic():
        CheckIn.objects.create(person=person, kiosk=kiosk, site="main", local_date=first.checkin.local_date,
                               window=first.checkin.window, score=0.5)
    tomorrow = _record(kiosk, person, at=timezone.now() + timedelta(days=1))
    assert tomorrow.created and CheckIn.objects.count() == 2
    summaries = list(AuditEvent.objects.filter(action=services.CHECKIN_ACCEPTED).values_list("summary", flat=True))
    assert any("already checked in" in s for s in summaries) and all("Eileen" not in s for s in summaries)


def test_concurrent_kiosks_cannot_duplicate_a_check_in(person):
    kiosks = [services.kiosk_pair(code=services.kiosk_create(actor=None, name=f"K{i}")[1])[0] for i in range(4)]
    barrier = threading.Barrier(len(kiosks))
    outcomes, errors = [], []

    def arrive(kiosk):
        try:
            barrier.wait(5)
            outcomes.append(_record(kiosk, person))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=arrive, args=(k,)) for k in kiosks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert sorted(o.created for o in outcomes) == [False, False, False, True]
    assert CheckIn.objects.count() == 1


def test_a_check_in_deleted_while_a_kiosk_meets_it_is_recorded_anew(paired, person, monkeypatch):
    """The window's check-in is deleted (an administrator's correction, the retention purge)
    between a kiosk's refused insert and its read of the row that refused it."""
    kiosk, _ = paired
    first = _record(kiosk, person)
    manager = type(CheckIn.objects)
    select_related = manager.select_related

    def deleted_first(self, *fields):   # the kiosk's insert was refused; now the row goes
        monkeypatch.setattr(manager, "select_related", select_related)
        CheckIn.objects.filter(pk=first.checkin.pk).delete()
        return select_related(self, *fields)

    monkeypatch.setattr(manager, "select_related", deleted_first)
    again = _record(kiosk, person)
    assert again.created and again.checkin.pk != first.checkin.pk
    assert list(CheckIn.objects.values_list("pk", flat=True)) == [again.checkin.pk]


@pytest.mark.parametrize("change", ["unpair", "deactivate", "delete"])
def test_a_kiosk_revoked_before_its_socket_heard_records_no_check_in(paired, person, change):
    """The socket's row is read at its handshake and rechecked every 30 s, and the revocation's
    message can be late or lost: the check-in reads the kiosk again, locked, and refuses."""
    kiosk, _ = paired
    sockets_copy = Kiosk.objects.get(pk=kiosk.pk)
    if change == "unpair":
        services.kiosk_unpair(kiosk=kiosk, actor=None)
    elif change == "deactivate":
        services.kiosk_update(kiosk=kiosk, actor=None, active=False)
    else:
        services.kiosk_delete(kiosk=kiosk, actor=None)
    with pytest.raises(services.KioskRevoked):
        _record(sockets_copy, person)
    assert not CheckIn.objects.exists()
    assert not AuditEvent.objects.filter(action=services.CHECKIN_ACCEPTED).exists()


def test_a_check_in_takes_the_kiosks_site_as_it_is_now(paired, person):
    kiosk, _ = paired
    sockets_copy = Kiosk.objects.get(pk=kiosk.pk)
    services.kiosk_update(kiosk=kiosk, actor=None, site="annex")
    assert _record(sockets_copy, person).checkin.site == "annex"


@pytest.mark.parametrize("deletion", ["kiosk", "person"])
def test_a_kiosk_deleted_or_a_person_erased_during_their_check_in_waits_for_it(paired, person, monkeypatch,
                                                                               deletion):
    """The deletion's cascade reads the check-ins, then deletes the row they point to: one being
    inserted meanwhile failed a commit on its foreign key (PostgreSQL checks them at commit), the
    kiosk's ("internal") or the erasure's (not erased). The check-in locks both rows first."""
    from enrollment import services as enrollment
    from enrollment.models import Person

    if connections["default"].vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL only (SQLite serialises writers)")
    kiosk, _ = paired
    inserting, go_on = threading.Event(), threading.Event()
    manager = type(CheckIn.objects)
    create = manager.create

    def held(self, **fields):
        inserting.set()
        go_on.wait(10)
        return create(self, **fields)

    monkeypatch.setattr(manager, "create", held)
    errors: list[BaseException] = []

    def in_thread(fn):
        def body():
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                connections.close_all()
        thread = threading.Thread(target=body)
        thread.start()
        return thread

    checking_in = in_thread(lambda: _record(kiosk, person))
    assert inserting.wait(10)
    if deletion == "kiosk":
        deleting = in_thread(lambda: services.kiosk_delete(kiosk=Kiosk.objects.get(pk=kiosk.pk), actor=None))
    else:
        deleting = in_thread(lambda: enrollment.person_erase(person=Person.objects.get(pk=person.pk), actor=None))
    deleting.join(1)   # waits on the check-in's lock (without it: done, and the check-in then fails)
    go_on.set()
    checking_in.join(20)
    deleting.join(20)
    assert not errors
    if deletion == "kiosk":
        assert not Kiosk.objects.filter(pk=kiosk.pk).exists() and CheckIn.objects.get().kiosk_id is None
    else:
        assert not Person.objects.filter(pk=person.pk).exists() and not CheckIn.objects.exists()


def test_deleting_a_kiosk_or_a_check_in_twice_is_recorded_once(paired, person):
    """Two administrators deleting the same row (each from a page read before the other's delete)."""
    kiosk, _ = paired
    checkin = _record(kiosk, person).checkin
    stale = CheckIn.objects.get(pk=checkin.pk)
    services.checkin_delete(checkin=checkin, actor=None)
    services.checkin_delete(checkin=stale, actor=None)
    stale_kiosk = Kiosk.objects.get(pk=kiosk.pk)
    services.kiosk_delete(kiosk=kiosk, actor=None)
    services.kiosk_delete(kiosk=stale_kiosk, actor=None)
    deletions = AuditEvent.objects.filter(action="delete")
    assert sorted(deletions.values_list("object_type", flat=True)) == ["recognition.checkin", "recognition.kiosk"]


def test_inactive_people_are_not_checked_in(paired, person):
    person.active = False
    person.save()
    assert _record(paired[0], person) is None and not CheckIn.objects.exists()


def test_snapshots_are_dropped_unless_enabled(paired, person, settings):
    settings.MASKNET_CHECKIN_SNAPSHOTS = False
    assert _record(paired[0], person, snapshot=b"jpeg").checkin.snapshot is None


def test_rejections_are_audited(paired):
    services.checkin_reject_record(kiosk=paired[0], reason="unknown", frames=6, score=0.31, threshold=0.38,
                                   masked=True)
    services.checkin_reject_record(kiosk=paired[0], reason="quality", frames=8, detail="too_dark x8")
    unknown = AuditEvent.objects.get(action=services.CHECKIN_UNKNOWN)
    quality = AuditEvent.objects.get(action=services.CHECKIN_QUALITY)
    assert "best score 0.310 (threshold 0.380)" in unknown.summary and "masked" in unknown.summary
    assert "too_dark x8" in quality.summary and unknown.actor == "system"


def test_daily_counts_fill_missing_days(paired, person, other_person):
    kiosk = paired[0]
    now = timezone.now()
    _record(kiosk, person, at=now)
    _record(kiosk, other_person, at=now)
    _record(kiosk, person, at=now - timedelta(days=2))
    today = timezone.localdate()
    counts = CheckIn.objects.daily_counts(today - timedelta(days=3), today)
    assert list(counts.values()) == [0, 1, 0, 2]
