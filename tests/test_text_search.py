"""Searches ignore letter case in every script on SQLite too (``masknet_site.text_search``): SQLite's
``LIKE`` folds ASCII letters only, so on the embedded default "élodie" found nobody named "Élodie",
nor "иван" "Иван", in the admin, the API or the hand check-in's chooser. Runs on whichever database
the suite uses (PostgreSQL folds them itself)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from enrollment import services as enrollment
from enrollment.models import Person

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(db) -> dict[str, Person]:
    return {name: enrollment.person_create(actor=None, full_name=name, staff_id=f"S-{i}", department=department)
            for i, (name, department) in enumerate([("Élodie Durand", "Ops"), ("Иван Петров", "Склад"),
                                                     ("Ana Silva", "ÉTUDES"), ("Zoë 50%_off", "Ops")])}


def found(**lookup) -> set[str]:
    return set(Person.objects.filter(**lookup).values_list("full_name", flat=True))


@pytest.mark.parametrize("text, who", [
    ("élodie", {"Élodie Durand"}), ("ÉLODIE", {"Élodie Durand"}), ("иван", {"Иван Петров"}),
    ("ПЕТРОВ", {"Иван Петров"}), ("склад", {"Иван Петров"}), ("études", {"Ana Silva"}),
    ("ZOË 50%", {"Zoë 50%_off"}), ("zoë 50%_", {"Zoë 50%_off"}), ("ë 5_%", set()),   # % and _ are letters here
    ("silva", {"Ana Silva"}), ("nobody", set()),
])
def test_a_search_ignores_letter_case_in_every_script(people, text, who):
    assert set(Person.objects.search(text).values_list("full_name", flat=True)) == who


def test_the_other_case_insensitive_lookups_fold_too(people):
    assert found(full_name__istartswith="élo") == {"Élodie Durand"}
    assert found(full_name__iendswith="ПЕТРОВ") == {"Иван Петров"}
    assert found(full_name__iexact="иван петров") == {"Иван Петров"}
    assert found(full_name__iexact="иван") == set()
    assert found(department__iexact="études") == {"Ana Silva"}
    assert found(full_name__icontains="Élodie", department="Ops") == {"Élodie Durand"}
    # letter case, not casefold(): "ß" is not "ss" here, as on PostgreSQL ("weiß" found "WEISS" one way only)
    enrollment.person_create(actor=None, full_name="Anna Weiß", staff_id="W-1")
    enrollment.person_create(actor=None, full_name="Bob WEISS", staff_id="W-2")
    assert found(full_name__icontains="WEIß") == {"Anna Weiß"}
    assert found(full_name__icontains="weiss") == {"Bob WEISS"}


def test_the_admin_and_the_api_find_them(client, people):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    page = client.get(reverse("admin:enrollment_person_changelist"), {"q": "иван"})
    assert page.status_code == 200 and "Иван Петров" in page.content.decode()
    assert "Élodie Durand" not in page.content.decode()
    answer = client.get("/api/v1/people", {"search": "élodie"}).json()
    assert [row["full_name"] for row in answer["results"]] == ["Élodie Durand"]
