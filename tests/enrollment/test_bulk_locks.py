"""Lock order of the changes to several people at once (people_erase, people_deactivate) against each
other and the adapted-photo purge, on PostgreSQL (SQLite runs one writer at a time). Each was a
deadlock a review found: batches locked in the admin list's name order, and an erasure holding one
person's photos while it waited for the next one's."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from enrollment import services
from enrollment.models import FacePhoto, Person
from enrollment.services import people as people_services
from tests.enrollment.conftest import in_thread


def pause_after_first_erased(monkeypatch):
    """people_erase stops after deleting its first person (their row locked) until released."""
    first, release = threading.Event(), threading.Event()
    real = people_services._staff_id_suppress

    def slow(*, staff_id):
        out = real(staff_id=staff_id)
        if not first.is_set():
            first.set()
            assert release.wait(20)
        return out

    monkeypatch.setattr(people_services, "_staff_id_suppress", slow)
    return first, release


@pytest.mark.django_db(transaction=True)
def test_a_deactivation_of_over_500_in_the_lists_order_and_an_erasure_take_turns(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("lock order matters on PostgreSQL only: SQLite runs one writer at a time")
    # names in the opposite order of ids: the admin's list (ordered by name) gives the ids highest first
    people = [services.person_create(actor=None, full_name=f"N{9999 - i:04d}", staff_id=f"S{i}") for i in range(501)]
    low, high = people[0].pk, people[-1].pk
    chosen = list(Person.objects.filter(active=True).values_list("pk", flat=True))   # as the admin's action
    assert chosen[0] == high and chosen[-1] == low
    first, release = pause_after_first_erased(monkeypatch)
    errors: list[BaseException] = []
    erase = in_thread(errors, lambda: services.people_erase(people=[low, high], actor=None))
    deact = in_thread(errors, lambda: services.people_deactivate(people=chosen, actor=None))
    erase.start()
    assert first.wait(20)            # the erasure holds person `low`
    deact.start()
    time.sleep(1.0)                  # deactivation: batch 1 (holding `high`) done, batch 2 waits for `low`
    release.set()
    erase.join(30)
    deact.join(30)
    assert not errors, errors


@pytest.mark.django_db(transaction=True)
def test_the_adapted_photo_purge_and_an_erasure_of_two_take_turns(make_photo, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("lock order matters on PostgreSQL only: SQLite runs one writer at a time")
    a = services.person_create(actor=None, full_name="A", staff_id="A1")
    b = services.person_create(actor=None, full_name="B", staff_id="B1")
    pb = make_photo(b)   # lower photo id, higher person id
    pa = make_photo(a)
    old = timezone.now() - timedelta(days=100)
    FacePhoto.objects.filter(pk__in=[pa.pk, pb.pk]).update(source=FacePhoto.Source.CHECKIN, created_at=old)
    first, release = pause_after_first_erased(monkeypatch)
    errors: list[BaseException] = []
    erase = in_thread(errors, lambda: services.people_erase(people=[a.pk, b.pk], actor=None))
    purge = in_thread(errors, lambda: services.adapted_photos_purge(older_than_days=30))
    erase.start()
    assert first.wait(20)       # holds a's photo and row
    purge.start()
    time.sleep(1.0)             # purge locked b's photo (lower id), waits for a's
    release.set()
    erase.join(30)
    purge.join(30)
    assert not errors, errors


@pytest.mark.django_db(transaction=True)
def test_two_deactivations_of_the_same_people_in_other_orders_take_turns():
    if connection.vendor != "postgresql":
        pytest.skip("lock order matters on PostgreSQL only: SQLite runs one writer at a time")
    for i in range(1001):
        services.person_create(actor=None, full_name=f"N{9999 - i:04d}", staff_id=f"S{i}")
    by_name = list(Person.objects.filter(active=True).values_list("pk", flat=True))        # ?o= default
    by_id = list(Person.objects.filter(active=True).order_by("pk").values_list("pk", flat=True))   # sorted by id column
    errors: list[BaseException] = []
    t1 = in_thread(errors, lambda: services.people_deactivate(people=by_name, actor=None))
    t2 = in_thread(errors, lambda: services.people_deactivate(people=by_id, actor=None))
    t1.start(), t2.start()
    t1.join(30), t2.join(30)
    assert not errors, errors
