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


def test_a_name_typed_without_its_accents_finds_the_person(client, people):
    """Staff type names without accents ("chavez", "muller", "lukasz"), and every people search
    compared them as typed: "0 results" for someone enrolled as "Hugo Chávez". A name's key
    (``enrollment.text.name_key``) is compared too, in the people search, the admin's people,
    photos and check-ins lists and the API. Found by a helper's first day on the site."""
    for i, name in enumerate(("Hugo Chávez", "Jürgen Müller", "Łukasz Żółć", "Søren Berg")):
        enrollment.person_create(actor=None, full_name=name, staff_id=f"A-{i}")
    for text, who in (("chavez", {"Hugo Chávez"}), ("hugo chavez", {"Hugo Chávez"}), ("MULLER", {"Jürgen Müller"}),
                      ("lukasz zolc", {"Łukasz Żółć"}), ("soren", {"Søren Berg"}), ("elodie", {"Élodie Durand"}),
                      ("chávez", {"Hugo Chávez"}), ("chavezz", set()), ("chavez hugo", {"Hugo Chávez"})):
        assert set(Person.objects.search(text).values_list("full_name", flat=True)) == who, text
    hugo = Person.objects.get(full_name="Hugo Chávez")
    assert hugo.name_key == "hugo chavez"
    hugo.full_name = "Hugo Chávez Frías"
    hugo.save(update_fields=["full_name"])   # kept with the name
    assert Person.objects.get(pk=hugo.pk).name_key == "hugo chavez frias"
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    for lst in ("enrollment_person", "enrollment_facephoto", "recognition_checkin"):
        page = client.get(reverse(f"admin:{lst}_changelist"), {"q": "chavez"})
        assert page.status_code == 200, lst
        assert page.context["cl"].queryset.model._meta.label.lower().replace(".", "_") == lst
    listed = client.get(reverse("admin:enrollment_person_changelist"), {"q": "chavez"}).content.decode()
    assert "Hugo Chávez Frías" in listed and "Søren" not in listed
    # word by word, as the admin's search goes: in any order, beside a staff id, a quoted phrase (the
    # review found only the whole text compared: "chavez hugo" and "chavez A-0" found nobody)
    for q, who in (("chavez hugo", {"Hugo Chávez Frías"}), ("Chavez A-0", {"Hugo Chávez Frías"}),
                   ('"hugo chavez"', {"Hugo Chávez Frías"}), ("chavez A-1", set()),
                   ("muller jurgen", {"Jürgen Müller"})):
        page = client.get(reverse("admin:enrollment_person_changelist"), {"q": q})
        assert {p.full_name for p in page.context["cl"].result_list} == who, q
    answer = client.get("/api/v1/people", {"search": "muller"}).json()
    assert [row["full_name"] for row in answer["results"]] == ["Jürgen Müller"]


@pytest.mark.parametrize(("name", "key"), [
    ("Hugo Chávez", "hugo chavez"), ("Weiß", "weiss"), ("ÆTHELRED", "aethelred"), ("Иван Ёлкин", "иван елкин"),
    ("Ελένη", "ελενη"), ("हिन्दी", "हिन्दी"), ("  Zoë\u200b  Smith ", "zoe smith")])
def test_a_names_key_drops_latin_greek_and_cyrillic_accents_only(name, key):
    """Marks on the letters of other scripts spell (Devanagari's vowel signs): kept."""
    from enrollment.text import name_key

    assert name_key(name) == key and name_key(key) == key


def test_one_names_find_agrees_with_the_database_search(people):
    """``enrollment.text.name_found`` (the hand check-in chooser's "found by the name") and
    ``PersonQuerySet.search`` (the database's) apply one rule: they were two copies of it."""
    from enrollment.text import name_found

    for i, name in enumerate(("Hugo Chávez", "Jürgen Müller", "Łukasz Żółć")):
        enrollment.person_create(actor=None, full_name=name, staff_id=f"A-{i}")
    texts = ("chavez", "hugo chavez", "chavez hugo", "CHÁVEZ", "chavezz", "muller jurgen", "lukasz", "zolc x",
             "élodie", "иван", "ПЕТРОВ", "silva ana", "zoë 50%", "ë 5_%", "   ", "A-0")
    for text in texts:
        by_name = {p.full_name for p in Person.objects.all() if name_found(p.full_name, text)}
        searched = set(Person.objects.search(text, departments=False).values_list("full_name", flat=True))
        staff = set(Person.objects.filter(staff_id__icontains=text.strip()).values_list("full_name", flat=True))
        # the database finds staff ids too: every name found is found there, and nothing else but staff ids
        assert by_name <= searched and searched - by_name <= staff, (text, by_name, searched)
