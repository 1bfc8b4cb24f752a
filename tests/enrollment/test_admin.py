"""The enrollment admin with a logged-in client: pages, upload, actions and each role's permissions."""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
from datetime import datetime

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from audit.models import AuditEvent
from enrollment import admin as admin_module
from enrollment import recognizer, services
from enrollment.models import FacePhoto, IndexVersion, Person, TrainingRun
from enrollment.services import index as index_services
from enrollment.services import photos as photo_services
from enrollment.tasks import rebuild_index_task
from tests.enrollment.conftest import jpeg, png

CHANGELIST = reverse("admin:enrollment_person_changelist")
WARM_SOON = recognizer.warm_soon   # before tests/conftest.py's no_engine_warm_up replaces it for each test


def change_url(person: Person) -> str:
    return reverse("admin:enrollment_person_change", args=[person.pk])


def person_form(person: Person, **extra) -> dict:
    data = {"full_name": person.full_name, "staff_id": person.staff_id, "department": person.department,
            "active": "on" if person.active else "", "notes": person.notes}
    data.update(extra)
    return {k: v for k, v in data.items() if v != ""}


# ------------------------------------------------------------------------------------------ pages

@pytest.mark.parametrize("who", ["su_client", "enroller_client"])
def test_people_list_with_thumbnails_search_and_filters(request, who, person, make_photo):
    client = request.getfixturevalue(who)
    photo = make_photo(person)
    other = services.person_create(actor=None, full_name="Tom Hanks", staff_id="T-2", department="Film")
    services.person_deactivate(person=other, actor=None)
    page = client.get(CHANGELIST)
    assert page.status_code == 200
    html = page.content.decode()
    assert reverse("enrollment:photo-thumb", args=[photo.pk]) in html and "Tom Hanks" in html
    # the thumbnail is the row's link: it has a name for screen readers, as has a missing photo; the
    # person's, not a photo id the list never shows ("photo #41")
    assert 'alt="photo of Eileen Collins"' in html and 'alt=""' not in html and "no photo" in html
    assert not re.findall(r'alt="[^"]*#', html)
    assert html.count("0: cannot check in yet") == 1   # Tom, not Eileen: a bare 0 did not say so
    assert "Eileen Collins" in client.get(CHANGELIST, {"q": "flight"}).content.decode()
    assert "Tom Hanks" not in client.get(CHANGELIST, {"q": "flight"}).content.decode()
    assert "Eileen Collins" not in client.get(CHANGELIST, {"active__exact": "0"}).content.decode()
    # the photo-count filter: who still needs photos
    few = client.get(CHANGELIST, {"photos": "lt3"}).content.decode()
    assert "Eileen Collins" in few and "Tom Hanks" in few
    none = client.get(CHANGELIST, {"photos": "0"}).content.decode()
    assert "Tom Hanks" in none and "Eileen Collins" not in none
    make_photo(person)
    make_photo(person)
    enough = client.get(CHANGELIST, {"photos": "3+"}).content.decode()
    assert "Eileen Collins" in enough and "Tom Hanks" not in enough


def test_the_department_filter_ignores_letter_case_and_names_no_department(su_client, person):
    """Django's own filter listed "Flight" and "flight" as two choices, each finding part of the
    department, and people without one as an empty, unlabelled link."""
    services.person_create(actor=None, full_name="Sally Ride", staff_id="S-1", department="flight")
    services.person_create(actor=None, full_name="Mae Jemison", staff_id="M-1", department="Flight")
    services.person_create(actor=None, full_name="Élodie Ólafsdóttir", staff_id="O-1", department="Équipe")
    services.person_create(actor=None, full_name="Nobody Special", staff_id="N-1", department="")
    html = su_client.get(CHANGELIST).content.decode()
    choices = re.findall(r'<a href="\?department=([^"&]*)"', html)
    # the most common spelling names the choice: two "Flight" against one "flight"
    assert choices == ["", "Flight", "%C3%89quipe"], choices
    assert ">(none)</a>" in html
    flight = su_client.get(CHANGELIST, {"department": "Flight"}).content.decode()
    assert all(name in flight for name in ("Eileen Collins", "Sally Ride", "Mae Jemison"))
    assert "Nobody Special" not in flight and "Élodie" not in flight
    none = su_client.get(CHANGELIST, {"department": ""}).content.decode()
    assert "Nobody Special" in none and "Eileen Collins" not in none
    # a non-ASCII department matched ignoring case on SQLite too (masknet_site.text_search), and shown chosen
    equipe = su_client.get(CHANGELIST, {"department": "équipe"}).content.decode()
    assert "Élodie" in equipe and re.search(r'<li class="selected">\s*<a href="\?department=%C3%89quipe"', equipe)


def test_the_people_lists_thumbnail_is_a_photo_whose_file_is_there(su_client, person, make_photo):
    """The first photo whose file the daily sweep found gone was the list's thumbnail: a broken image
    where the person has good photos."""
    gone, good = make_photo(person), make_photo(person)
    FacePhoto.objects.filter(pk=gone.pk).update(file_missing=True)
    html = su_client.get(CHANGELIST).content.decode()
    assert reverse("enrollment:photo-thumb", args=[good.pk]) in html
    assert reverse("enrollment:photo-thumb", args=[gone.pk]) not in html


@pytest.mark.parametrize("query", [{}, {"q": "Person"}, {"active__exact": "1"}, {"o": "-6"}, {"photos": "lt3"}])
def test_people_list_counts_and_choices_read_no_photos(su_client, make_photo, query):
    """The list's counts and its department filter's choices count people alone: with the photo count a
    join of every photo grouped by person, each of them grouped all photos of the site (three times a
    page); the list's own page reads the photos of its rows alone. As many queries whatever the photos."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def page_queries() -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            page = su_client.get(CHANGELIST, query)
        assert page.status_code == 200 and "Person 1" in page.content.decode()
        return [q["sql"] for q in queries.captured_queries]

    people = [services.person_create(actor=None, full_name=f"Person {i}", staff_id=f"P-{i}", department=f"D{i}")
              for i in range(3)]
    make_photo(people[0])
    page_queries()   # a page also resumes overdue rebuilds, at most once a minute a process (index_rebuild_resume)
    few = page_queries()
    for person in people:
        make_photo(person)
        make_photo(person)
    many = page_queries()
    assert len(many) == len(few)
    counts = [sql for sql in many if sql.startswith(("SELECT COUNT(*)", "SELECT DISTINCT"))
              or sql.startswith('SELECT "enrollment_person"."department"')]   # the department filter's choices
    assert len(counts) == 3 and not [sql for sql in counts if "enrollment_facephoto" in sql and "photos" not in query]
    assert not [sql for sql in many if 'GROUP BY "enrollment_person"."id"' in sql], many


def test_change_page_shows_photos_with_box_and_verdict(su_client, person, make_photo):
    photo = make_photo(person)
    html = su_client.get(change_url(person)).content.decode()
    assert reverse("enrollment:photo-thumb", args=[photo.pk]) in html
    assert 'class="mn-box" style="left:12.5%;top:12.5%;width:75.0%;height:75.0%"' in html
    assert "good" in html and "no mask" in html and 'name="remove_photos"' in html
    assert reverse("admin:enrollment_person_capture", args=[person.pk]) in html
    assert reverse("admin:enrollment_person_erase", args=[person.pk]) in html
    assert 'type="file" name="photos"' in html and "multiple" in html
    assert 'id="mn-status"' in html  # live rebuild status


def test_the_photos_verdict_filter_words_it_as_the_rows_do(su_client, person, make_photo):
    """The photos list's rows say "good" where the filter beside them said "ok" (the stored value,
    which stays the filter's query string); other verdicts read alike in both."""
    good, dark = make_photo(person), make_photo(person)
    FacePhoto.objects.filter(pk=dark.pk).update(quality_verdict="too_dark")
    photos = reverse("admin:enrollment_facephoto_changelist")
    listing = su_client.get(photos).content.decode()
    assert '<a href="?quality_verdict=ok">good</a>' in listing, listing
    assert '<a href="?quality_verdict=too_dark">too_dark</a>' in listing and ">ok<" not in listing
    assert '<a href="?_facets=True&amp;quality_verdict=ok">good (1)</a>' in su_client.get(
        photos, {"_facets": "True"}).content.decode()
    shown = su_client.get(photos, {"quality_verdict": "ok"}).context["cl"].result_list
    assert [p.pk for p in shown] == [good.pk]


def test_status_bar_says_when_the_active_index_is_outdated(su_client):
    from enrollment.recognizer import template_version

    IndexVersion.objects.create(path="index-old.npz", sha256="0" * 64, people_count=1, template_count=2, dim=8,
                                model_version="from-an-earlier-version", is_active=True)
    html = su_client.get(CHANGELIST).content.decode()
    assert "Index v" in html and "made by an earlier version of the recognizer" in html
    IndexVersion.objects.filter(is_active=True).update(model_version=template_version())
    assert "made by an earlier version" not in su_client.get(CHANGELIST).content.decode()


def test_enroller_change_page_has_capture_but_no_erase(enroller_client, person):
    html = enroller_client.get(change_url(person)).content.decode()
    assert reverse("admin:enrollment_person_capture", args=[person.pk]) in html
    assert reverse("admin:enrollment_person_erase", args=[person.pk]) not in html


def test_add_person_goes_through_the_service(enroller_client):
    response = enroller_client.post(reverse("admin:enrollment_person_add"),
                                    {"full_name": "New Person", "staff_id": "N-1", "active": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    person = Person.objects.get(staff_id="N-1")
    assert AuditEvent.objects.filter(action="create", object_id=str(person.pk), actor="enroller").exists()


def test_a_staff_id_in_other_letter_case_is_refused_on_the_field(enroller_client, person):
    response = enroller_client.post(reverse("admin:enrollment_person_add"),
                                    {"full_name": "New Person", "staff_id": "e-1", "active": "on"})
    assert response.status_code == 200 and "letter case" in str(response.context["adminform"].form.errors["staff_id"])
    assert not Person.objects.filter(staff_id="e-1").exists()


def test_a_staff_id_in_another_unicode_form_is_refused_on_the_field(enroller_client):
    """"Zoë" decomposed (NFD, a Mac's) where it is stored composed (NFC) made a second person whose
    staff id looked the same; the name and id are stored NFC, without invisible characters."""
    nfc, nfd = unicodedata.normalize("NFC", "ZO\u00cb-1"), unicodedata.normalize("NFD", "ZO\u00cb-1")
    add = reverse("admin:enrollment_person_add")
    made = enroller_client.post(add, {"full_name": "Zoe\u0308 Adams\u200b", "staff_id": f"\u00a0{nfd}", "active": "on"})
    assert made.status_code == 302, made.content.decode()[:2000]
    zoe = Person.objects.get()
    assert (zoe.full_name, zoe.staff_id) == ("Zo\u00eb Adams", nfc)
    again = enroller_client.post(add, {"full_name": "Other", "staff_id": f"{nfd}\u200b", "active": "on"})
    assert again.status_code == 200 and "already exists" in str(again.context["adminform"].form.errors["staff_id"])
    assert Person.objects.count() == 1


def test_admin_searches_find_a_name_typed_in_either_unicode_form(su_client, person, make_photo):
    """The people, photos and check-ins lists' search (and so their CSV exports) in "Zoë" typed
    decomposed found nobody stored composed, and the reverse."""
    from django.utils import timezone

    from recognition.models import CheckIn

    zoe = services.person_create(actor=None, full_name="Zo\u00eb Adams", staff_id="Z-1")
    make_photo(zoe)
    CheckIn.objects.create(person=zoe, site="main", local_date=timezone.localdate(), window="main|1", score=0.9)
    for query in ("Zo\u00eb", "Zoe\u0308", "Zo\u00eb\u200b Adams"):
        for listing in ("admin:enrollment_person_changelist", "admin:enrollment_facephoto_changelist",
                        "admin:recognition_checkin_changelist"):
            shown = su_client.get(reverse(listing), {"q": query}).context["cl"].result_list
            assert [getattr(row, "person", row) for row in shown] == [zoe], (listing, ascii(query))


def test_a_staff_id_in_another_case_width_or_spacing_is_refused_on_the_field_and_found(enroller_client, su_client,
                                                                                       make_photo):
    """"zo\xeb-1" where "ZO\xcb-1" is stored was a second person on SQLite; a full-width
    "\uff3a\uff2f\uff25-2", "A  3" with two spaces or "A\u20114" with a non-breaking hyphen on both
    databases; and the lists' search in such a form found nobody."""
    from django.utils import timezone

    from recognition.models import CheckIn

    add = reverse("admin:enrollment_person_add")
    people = {}
    for staff_id in ("ZO\u00cb-1", "ZOE-2", "A 3", "A-4"):
        made = enroller_client.post(add, {"full_name": "Someone", "staff_id": staff_id, "active": "on"})
        assert made.status_code == 302, made.content.decode()[:2000]
        people[staff_id] = Person.objects.get(staff_id=staff_id)
        make_photo(people[staff_id])
        CheckIn.objects.create(person=people[staff_id], site="main", local_date=timezone.localdate(),
                               window=f"main|{staff_id}", score=0.9)
    for stored, typed in (("ZO\u00cb-1", "zo\u00eb-1"), ("ZOE-2", "\uff3a\uff2f\uff25-2"), ("A 3", "a  3"),
                          ("A-4", "a\u20114")):
        again = enroller_client.post(add, {"full_name": "Other", "staff_id": typed, "active": "on"})
        assert again.status_code == 200
        assert "letter case" in str(again.context["adminform"].form.errors["staff_id"]), ascii(typed)
        for listing in ("admin:enrollment_person_changelist", "admin:enrollment_facephoto_changelist",
                        "admin:recognition_checkin_changelist"):
            shown = su_client.get(reverse(listing), {"q": typed}).context["cl"].result_list
            assert [getattr(row, "person", row) for row in shown] == [people[stored]], (listing, ascii(typed))
    assert Person.objects.count() == 4


def test_view_site_leads_each_role_to_a_page_of_theirs(client, enroller, superuser):
    """The admin's "View site" is the root, which sent everyone to the attendance page: a 403 for
    Enrollers, who may not read check-ins."""
    attendance = reverse("attendance-day")
    assert client.get("/").url == attendance                       # asks for a login there
    client.force_login(enroller)
    landing = client.get("/", follow=True)
    assert landing.redirect_chain[-1][0] == reverse("admin:index") and landing.status_code == 200
    client.force_login(superuser)
    assert client.get("/").url == attendance and client.get(attendance).status_code == 200


def test_a_login_whose_next_is_refused_lands_on_a_page(client, superuser):
    """``?next=https://evil.example/`` is refused (no open redirect) and Django then sent the user
    to /accounts/profile/, which is no page here (404)."""
    for unsafe in ("https://evil.example/", "//evil.example/"):
        client.logout()
        response = client.post(f"{reverse('admin:login')}?next={unsafe}",
                               {"username": "root", "password": "pw", "next": unsafe}, follow=True)
        assert response.status_code == 200 and response.redirect_chain, unsafe
        assert "evil" not in response.redirect_chain[0][0]
        assert response.redirect_chain[-1][0] == reverse("attendance-day")


def test_edit_person_is_audited(enroller_client, person):
    response = enroller_client.post(change_url(person), person_form(person, department="Ground"))
    assert response.status_code == 302
    person.refresh_from_db()
    assert person.department == "Ground"
    assert AuditEvent.objects.get(action="update").summary.endswith(": department")



def test_photos_chosen_on_a_form_with_an_error_are_asked_for_again(enroller_client, person, astronaut_jpeg):
    """The browser cannot keep the chosen files when the form comes back: the field says so."""
    services.person_create(actor=None, full_name="Other", staff_id="TAKEN")
    files = [SimpleUploadedFile("a.jpg", astronaut_jpeg, "image/jpeg")]
    response = enroller_client.post(change_url(person), {**person_form(person, staff_id="TAKEN"), "photos": files})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "staff_id" in errors and "1 photo chosen: choose it again" in " ".join(errors["photos"])
    assert not FacePhoto.objects.exists()

@pytest.mark.models
def test_upload_several_photos_shows_refusal_reasons(enroller_client, person, engine, astronaut_jpeg, astronaut_bgr,
                                                     gradient_png, enqueued, django_capture_on_commit_callbacks):
    files = [SimpleUploadedFile("eileen.jpg", astronaut_jpeg, "image/jpeg"),
             SimpleUploadedFile("gradient.png", gradient_png, "image/png")]
    with django_capture_on_commit_callbacks(execute=True):
        response = enroller_client.post(change_url(person), {**person_form(person), "photos": files}, follow=True)
    assert response.status_code == 200
    assert FacePhoto.objects.filter(person=person).count() == 1
    text = " ".join(str(m) for m in response.context["messages"])
    assert "1 photo added" in text and "“gradient.png”: refused — No face found in the photo." in text
    assert len(enqueued) == 1
    assert "inactive" not in text
    # a photo of an inactive person is added, and the page says they are not recognised until reactivated
    services.person_deactivate(person=person, actor=None)
    person.refresh_from_db()
    files = [SimpleUploadedFile("eileen-2.jpg", jpeg(np.ascontiguousarray(astronaut_bgr[:, ::-1]), 85), "image/jpeg")]
    response = enroller_client.post(change_url(person), {**person_form(person), "photos": files}, follow=True)
    text = " ".join(str(m) for m in response.context["messages"])
    assert "1 photo added; the index is being rebuilt. Not recognised yet: Eileen Collins is inactive; kiosks " \
           "recognise them once they are reactivated." in text, text


@pytest.mark.models
def test_a_person_whose_photos_all_show_a_mask_is_told_to_need_one_without(enroller_client, person, engine,
                                                                           astronaut_bgr, astronaut_jpeg,
                                                                           monkeypatch):
    """A person enrolled from a photo wearing a mask has only masked templates, which a face without
    a mask is never compared with: the kiosk said "not recognised" to them bare-faced, while the admin
    had said "1 photo added" and nothing more. Upload and webcam capture now warn while every photo
    of the person shows a mask, and so does removing the last one without."""
    from tests.recognition.faces import with_mask

    masked = jpeg(with_mask(engine, astronaut_bgr, seed=3, style="surgical"))
    warning = "Every photo of Eileen Collins shows a face mask: they are recognised only while wearing one"

    def said(response) -> str:
        return " ".join(str(m) for m in response.context["messages"])

    files = [SimpleUploadedFile("masked.jpg", masked, "image/jpeg")]
    response = enroller_client.post(change_url(person), {**person_form(person), "photos": files}, follow=True)
    assert FacePhoto.objects.get().masked and "1 photo added" in said(response) and warning in said(response)
    files = [SimpleUploadedFile("bare.jpg", astronaut_jpeg, "image/jpeg")]
    response = enroller_client.post(change_url(person), {**person_form(person), "photos": files}, follow=True)
    assert "1 photo added" in said(response) and warning not in said(response)
    bare = FacePhoto.objects.get(masked=False)
    response = enroller_client.post(change_url(person), person_form(person, remove_photos=[bare.pk]), follow=True)
    assert "1 photo removed" in said(response) and warning in said(response)
    # the same with a new photo in that save that is refused: the warning was left out
    services.photo_add(person=person, data=astronaut_jpeg, actor=None)
    bare = FacePhoto.objects.get(masked=False)
    blank = [SimpleUploadedFile("blank.png", png(np.full((200, 200, 3), 128, np.uint8)), "image/png")]
    response = enroller_client.post(change_url(person), {**person_form(person, remove_photos=[bare.pk]),
                                                         "photos": blank}, follow=True)
    assert "1 photo removed" in said(response) and "refused" in said(response) and warning in said(response)
    # ...or not tried at all, the models missing
    from recognition.engine import ModelsMissing

    services.photo_add(person=person, data=astronaut_jpeg, actor=None)
    bare = FacePhoto.objects.get(masked=False)

    def missing():
        raise ModelsMissing("no models here")

    monkeypatch.setattr(recognizer, "get_engine", missing)
    response = enroller_client.post(change_url(person), {**person_form(person, remove_photos=[bare.pk]),
                                                         "photos": blank}, follow=True)
    assert "The photos were not added" in said(response) and warning in said(response)
    monkeypatch.undo()
    # the webcam page's burst: its JSON warnings, which the page shows under the button
    FacePhoto.objects.all().delete()
    url = reverse("admin:enrollment_person_capture_save", args=[person.pk])
    result = enroller_client.post(url, {"photos": [SimpleUploadedFile("webcam-1-0.jpg", masked, "image/jpeg")]})
    assert result.json()["saved"] and any(warning in w for w in result.json()["warnings"]), result.json()


@pytest.mark.models
def test_the_same_picture_saved_again_is_named_as_a_copy(enroller_client, person, engine, astronaut_bgr,
                                                         monkeypatch):
    """The same picture saved as JPEG, PNG and WebP was "3 photos added": only a byte-identical file
    was caught. Each copy is now stored with a warning naming the photo it repeats; the face of
    another kind (masked) is not taken for a copy of it. The photos of one upload are compared by
    the faces found when each was checked, not by analysing their files again at each photo after
    it (quadratic: 8 photos took 4 times as long)."""
    import cv2

    from enrollment.services import photos
    from tests.recognition.faces import with_mask

    analysed = []   # the earlier photos whose files the check analysed again
    stored_embedding = photos._stored_embedding
    monkeypatch.setattr(photos, "_stored_embedding",
                        lambda photo, engine: analysed.append(photo.pk) or stored_embedding(photo, engine))

    webp = cv2.imencode(".webp", astronaut_bgr, [cv2.IMWRITE_WEBP_QUALITY, 80])[1].tobytes()
    small = cv2.resize(astronaut_bgr, (384, 384), interpolation=cv2.INTER_AREA)
    files = [SimpleUploadedFile("eileen.jpg", jpeg(astronaut_bgr), "image/jpeg"),
             SimpleUploadedFile("eileen.png", png(small), "image/png"),
             SimpleUploadedFile("eileen.webp", webp, "image/webp")]
    response = enroller_client.post(change_url(person), {**person_form(person), "photos": files}, follow=True)
    said = [str(m) for m in response.context["messages"]]
    first = FacePhoto.objects.order_by("pk").first()
    assert FacePhoto.objects.count() == 3 and any("3 photos added" in m for m in said), said
    for name in ("eileen.png", "eileen.webp"):
        assert any(m.startswith(f"“{name}” is the same picture as photo #{first.pk} of Eileen Collins, saved again")
                   and "Remove one of the two and add a different photo" in m for m in said), said
    assert not any("“eileen.jpg” is" in m for m in said)
    assert analysed == []
    masked = [SimpleUploadedFile("masked.jpg", jpeg(with_mask(engine, astronaut_bgr, seed=3, style="surgical")),
                                 "image/jpeg")]
    response = enroller_client.post(change_url(person), {**person_form(person), "photos": masked}, follow=True)
    said = [str(m) for m in response.context["messages"]]
    assert any("1 photo added" in m for m in said) and not any("same picture" in m for m in said), said
    # the webcam page's burst of the same picture: its warning names the photo it repeats, not the
    # burst's file, which the page cut with the rest up to "(face score 1.00): " ("A copy adds nothing")
    url = reverse("admin:enrollment_person_capture_save", args=[person.pk])
    burst = [SimpleUploadedFile("webcam-1733-0.jpg", jpeg(astronaut_bgr, 80), "image/jpeg")]
    (warning,) = enroller_client.post(url, {"photos": burst}).json()["warnings"]
    assert warning.startswith(f"This photo is the same picture as photo #{first.pk} of Eileen Collins, saved again")
    assert "webcam-" not in warning


@pytest.mark.models
@pytest.mark.parametrize("turn", ["ROTATE_90_CLOCKWISE", "ROTATE_90_COUNTERCLOCKWISE", "ROTATE_180"])
def test_a_photo_on_its_side_or_upside_down_is_stored_upright(enroller_client, person, engine, astronaut_bgr, turn):
    """A sideways photo without EXIF orientation passed every check (the engine finds a face at any
    roll) and was stored on its side, its thumbnail too. It is now stored turned upright, with its
    size and face box, as an EXIF orientation is applied. So is an upside-down one, which was
    refused (its face read as masked, the photo turned half a circle showing an unmasked one)."""
    import math

    import cv2

    from recognition.engine.detect import box_iou

    upright = np.ascontiguousarray(astronaut_bgr[:, 56:456])        # 400 wide, 512 high: a portrait
    sideways = cv2.rotate(upright, getattr(cv2, turn))
    files = [SimpleUploadedFile("sideways.png", png(sideways), "image/png")]
    response = enroller_client.post(change_url(person), {**person_form(person), "photos": files}, follow=True)
    assert any("1 photo added" in str(m) for m in response.context["messages"])
    photo = FacePhoto.objects.get()
    assert (photo.width, photo.height, photo.masked) == (400, 512, False)
    with photo.image.open("rb") as fh:
        stored = cv2.imdecode(np.frombuffer(fh.read(), np.uint8), cv2.IMREAD_COLOR)
    assert stored.shape == upright.shape and np.abs(stored.astype(int) - upright).mean() < 1   # a PNG stays lossless
    face = recognizer.choose_face(engine.analyze(stored)).face
    assert abs(math.degrees(math.atan2(face.align_matrix[1][0], face.align_matrix[0][0]))) < 20
    assert box_iou(face.box, photo.box) > 0.8   # the box is the upright face's
    thumb = enroller_client.get(reverse("enrollment:photo-thumb", args=[photo.pk]))
    shown = cv2.imdecode(np.frombuffer(thumb.content, np.uint8), cv2.IMREAD_COLOR)
    assert shown.shape[0] > shown.shape[1]   # a portrait, as the photo was taken


def test_a_look_alike_warning_names_the_file_as_uploaded(su_client, person, monkeypatch):
    """The page capitalises each message's first letter: the warning about a face that also matches
    someone else began with the bare file name, so "eileen-2.jpg" read "Eileen-2.jpg", a file nobody
    uploaded (the refusals quote the name for that reason; this warning now does too)."""
    other = services.person_create(actor=None, full_name="Mei Lin", staff_id="ML-1")

    def stored(*, person, filename, **kwargs):
        photo = FacePhoto(pk=99, person=person)
        photo.lookalike = (other, 0.71)
        return photo

    monkeypatch.setattr(services, "photo_add", stored)
    files = [SimpleUploadedFile("eileen-2.jpg", b"a photo", "image/jpeg")]
    page = su_client.post(change_url(person), {**person_form(person), "photos": files}, follow=True).content.decode()
    assert f"“eileen-2.jpg”: this face also matches Mei Lin (#{other.pk}, score 0.71)" in page, page


@pytest.mark.parametrize(("edit", "stored", "changed"), [({}, 0, False), ({"department": "Ground"}, 0, True),
                                                      ({}, 1, True)],
                         ids=["photos alone, all refused", "an edit, all refused", "photos alone, one stored"])
def test_a_save_whose_photos_were_all_refused_claims_no_change(enroller_client, person, monkeypatch, edit, stored,
                                                               changed):
    """Django's green "The person … was changed successfully" showed above the refusals of every
    photo chosen, on a save that changed nothing: it is said only when a field changed or a photo
    was stored, and otherwise the page says that nothing was, no photo added."""
    calls = []

    def add(*, person, filename, **kwargs):
        calls.append(filename)
        if len(calls) > stored:
            raise services.PhotoRefused("no_face")
        photo = FacePhoto(pk=98 + len(calls), person=person)
        photo.lookalike = None
        return photo

    monkeypatch.setattr(services, "photo_add", add)
    monkeypatch.setattr(services, "photo_lookalike_shown", lambda **kwargs: None)
    files = [SimpleUploadedFile(name, b"a photo", "image/jpeg") for name in ("one.jpg", "two.jpg")]
    response = enroller_client.post(change_url(person), {**person_form(person, **edit), "photos": files}, follow=True)
    said = [(m.level_tag, str(m)) for m in response.context["messages"]]
    texts = [text for _level, text in said]
    assert any("was changed successfully" in text for text in texts) == changed, said
    assert ("Nothing was changed: no photo was added (the 2 photos chosen were all refused, as said below)."
            in texts) == (not changed), said
    refused = ["“one.jpg”: refused — No face found in the photo.", "“two.jpg”: refused — No face found in the photo."]
    assert texts[-(2 - stored):] == refused[stored:], said   # the refusals last, each named
    if changed:   # the success message first, then the photos' outcome
        assert "was changed successfully" in texts[0], said


@pytest.mark.models
def test_photos_for_a_person_erased_meanwhile_are_refused_with_a_message(enroller_client, person, engine,
                                                                         astronaut_jpeg, monkeypatch):
    real_inspect = photo_services.photo_inspect

    def erased_meanwhile(**kwargs):
        Person.objects.filter(pk=person.pk).delete()
        return real_inspect(**kwargs)

    monkeypatch.setattr(photo_services, "photo_inspect", erased_meanwhile)
    files = [SimpleUploadedFile("eileen.jpg", astronaut_jpeg, "image/jpeg")]
    response = enroller_client.post(change_url(person), {**person_form(person), "photos": files}, follow=True)
    assert response.status_code == 200
    assert "was erased meanwhile" in " ".join(str(m) for m in response.context["messages"])
    assert not FacePhoto.objects.exists()



def good_inspection(**kwargs) -> services.PhotoInspection:
    """What the engine says of a good photo, without the engine."""
    return services.PhotoInspection(ok=True, code=None, message="Good photo.", width=320, height=240, faces=1,
                                    box=[100.0, 60.0, 220.0, 200.0], quality_score=0.9, quality_verdict="ok",
                                    masked=False, masked_prob=0.02)


@pytest.mark.django_db(transaction=True)  # the thread's connection sees the admin's commits
@pytest.mark.parametrize("edit", [{}, {"department": "Ground"}], ids=["photo only", "photo and an edit"])
def test_change_form_photos_are_checked_outside_the_forms_transaction(enroller_client, person, gradient_png,
                                                                      monkeypatch, edit):
    """A face check takes up to a second: on SQLite a write by anyone else meanwhile (a check-in, a
    rebuild's heartbeat) failed the admin's own write ("database is locked": a 500, the person's
    edits lost) or, once the admin had written, waited for the checks to end."""
    from enrollment import recognizer
    from tests.enrollment.conftest import in_thread

    errors: list[BaseException] = []
    threads = []
    written_meanwhile = []

    def slow_inspect(*, data: bytes, engine=None) -> services.PhotoInspection:
        writer = in_thread(errors, lambda: TrainingRun.objects.create(reason="written during the face check"))
        threads.append(writer)
        writer.start()
        writer.join(timeout=3)
        written_meanwhile.append(not writer.is_alive())
        return good_inspection()

    monkeypatch.setattr(recognizer, "get_engine", object)
    monkeypatch.setattr(photo_services, "photo_inspect", slow_inspect)
    files = [SimpleUploadedFile("eileen.png", gradient_png, "image/png")]
    try:
        response = enroller_client.post(change_url(person), {**person_form(person, **edit), "photos": files},
                                        follow=True)
    finally:
        for t in threads:
            t.join()
    assert response.status_code == 200
    assert "1 photo added" in " ".join(str(m) for m in response.context["messages"])
    assert written_meanwhile == [True] and not errors
    assert FacePhoto.objects.filter(person=person).count() == 1 and TrainingRun.objects.filter(
        reason="written during the face check").exists()
    person.refresh_from_db()
    assert person.department == (edit.get("department") or person.department)


def test_one_bad_file_in_a_batch_is_named_and_the_others_kept(enroller_client, person, monkeypatch):
    """An empty file refused the whole batch ("The submitted file is empty.", naming none, the edits
    unsaved); a file the storage failed to write (a full disk) was a bare 500 after the photos
    before it had been saved, and the ones after it were never tried, nor named. Now the photos
    before it are kept, it is named, and so are those after it, not tried since the storage is full
    (``test_storage_full.py``)."""
    from django.core.files.storage import default_storage

    from enrollment import recognizer
    from tests.enrollment.conftest import png

    real_inspect, real_save, saves = photo_services.photo_inspect, default_storage.save, []
    monkeypatch.setattr(recognizer, "get_engine", object)
    monkeypatch.setattr(photo_services, "photo_inspect",
                        lambda *, data, engine=None: good_inspection() if data else real_inspect(data=data))

    def save(name, content, *args, **kwargs):
        saves.append(name)
        if len(saves) == 2:
            raise OSError(28, "No space left on device")
        return real_save(name, content, *args, **kwargs)

    monkeypatch.setattr(default_storage, "save", save)
    files = [SimpleUploadedFile("empty.jpg", b"", "image/jpeg")] + [
        SimpleUploadedFile(f"{n}.png", png(np.full((8, 8, 3), v, np.uint8)), "image/png")
        for n, v in (("one", 10), ("two", 20), ("three", 30))]
    response = enroller_client.post(change_url(person), {**person_form(person, department="Ground"), "photos": files},
                                    follow=True)
    assert response.status_code == 200
    text = " ".join(str(m) for m in response.context["messages"])
    assert "1 photo added" in text and "“empty.jpg”: refused — The file is empty (0 bytes)." in text, text
    assert "“two.png”: refused — The photo could not be stored" in text, text
    assert "Not tried, since the server's storage is full (as said above): “three.png”." in text, text
    assert FacePhoto.objects.filter(person=person).count() == 1 and len(saves) == 2
    person.refresh_from_db()
    assert person.department == "Ground"


def test_a_photo_the_storage_failed_to_write_is_logged_without_its_file_name(enroller_client, person, monkeypatch,
                                                                            caplog):
    """The upload's file name is often the person's name ("Ann Bee passport.png"): the page that
    uploaded it names it to the uploader, the server log (kept, shipped, read by others) does not."""
    from django.core.files.storage import default_storage

    from enrollment import recognizer
    from tests.enrollment.conftest import png

    monkeypatch.setattr(recognizer, "get_engine", object)
    monkeypatch.setattr(photo_services, "photo_inspect", lambda *, data, engine=None: good_inspection())

    def full(name, content, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(default_storage, "save", full)
    files = [SimpleUploadedFile("Ann Bee passport.png", png(np.full((8, 8, 3), 10, np.uint8)), "image/png")]
    with caplog.at_level("ERROR", logger="enrollment.admin"):
        response = enroller_client.post(change_url(person), {**person_form(person), "photos": files}, follow=True)
    text = " ".join(str(m) for m in response.context["messages"])
    assert "“Ann Bee passport.png”: refused — The photo could not be stored" in text, text
    logged = [r for r in caplog.records if r.name == "enrollment.admin"]
    # one line, the kernel's error in it: no traceback for each file of a batch
    assert logged and f"person #{person.pk}" in logged[0].getMessage() and not logged[0].exc_info
    assert "No space left on device" in logged[0].getMessage()
    assert "Ann Bee" not in caplog.text, caplog.text


def test_a_new_person_is_kept_when_the_face_models_are_missing(enroller_client, gradient_png, monkeypatch):
    from enrollment import recognizer
    from recognition.engine.errors import ModelsMissing

    def missing():
        raise ModelsMissing("no models")

    monkeypatch.setattr(recognizer, "get_engine", missing)
    files = [SimpleUploadedFile("new.png", gradient_png, "image/png")]
    response = enroller_client.post(reverse("admin:enrollment_person_add"),
                                    {"full_name": "New Person", "staff_id": "N-1", "active": "on", "photos": files},
                                    follow=True)
    assert response.status_code == 200
    assert Person.objects.filter(staff_id="N-1").exists() and not FacePhoto.objects.exists()
    text = " ".join(str(m) for m in response.context["messages"])
    assert "The face models are not installed on the server" in text


def test_a_save_without_photos_does_not_log_them_as_changed(enroller_client, person):
    from django.contrib.admin.models import LogEntry

    assert enroller_client.post(change_url(person), person_form(person, department="Ground")).status_code == 302
    assert enroller_client.post(change_url(person), person_form(person, department="Ground")).status_code == 302
    edit, unchanged = LogEntry.objects.filter(object_id=str(person.pk)).order_by("pk")
    assert edit.get_change_message() == "Changed Department."
    assert unchanged.get_change_message() == "No fields changed."


@pytest.mark.models
def test_the_history_records_the_photos_stored_not_those_refused(enroller_client, person, astronaut_jpeg,
                                                                  gradient_png, django_capture_on_commit_callbacks):
    """A save whose photos were all refused ("Nothing was changed") was on the person's history, and
    their data export's admin_history.csv, as "Changed Add photos."; the photos stored are said as
    added, by id. Found by a helper's review."""
    from django.contrib.admin.models import LogEntry

    refused = [SimpleUploadedFile("noface.png", gradient_png, "image/png")]
    enroller_client.post(change_url(person), {**person_form(person), "photos": refused})
    assert not LogEntry.objects.filter(object_id=str(person.pk)).exists()
    stored = [SimpleUploadedFile("eileen.jpg", astronaut_jpeg, "image/jpeg")]
    with django_capture_on_commit_callbacks(execute=True):
        enroller_client.post(change_url(person), {**person_form(person, department="Ground"), "photos": stored})
    photo = FacePhoto.objects.get()
    assert [e.get_change_message() for e in LogEntry.objects.filter(object_id=str(person.pk)).order_by("pk")] == [
        "Changed Department.", f"Added photo “#{photo.pk}”."]


def test_more_files_than_a_form_takes_say_so(enroller_client, person, gradient_png):
    """101 photos chosen (Django takes 100 files a request) answered a bare "Bad Request", the whole
    form lost and nothing said why. Found by a helper's review."""
    files = [SimpleUploadedFile(f"p{i}.png", gradient_png, "image/png") for i in range(101)]
    response = enroller_client.post(change_url(person), {**person_form(person), "photos": files})
    assert response.status_code == 400
    assert "More than 100 files were sent at once" in response.content.decode()
    assert "at most 100 at once" in enroller_client.get(change_url(person)).content.decode()


def test_remove_photo_from_the_change_page(enroller_client, person, make_photo, django_capture_on_commit_callbacks):
    keep, drop = make_photo(person), make_photo(person)
    with django_capture_on_commit_callbacks(execute=True):
        response = enroller_client.post(change_url(person), person_form(person, remove_photos=[drop.pk]))
    assert response.status_code == 302
    # said, beside Django's "changed successfully" (which a removal alone did not even make true)
    said = [str(m) for m in enroller_client.get(response["Location"]).context["messages"]]
    assert "1 photo removed (files and templates deleted); the index is being rebuilt." in said, said
    assert list(FacePhoto.objects.values_list("pk", flat=True)) == [keep.pk]
    assert AuditEvent.objects.filter(action="photo_remove", object_id=str(drop.pk)).exists()
    # the same box ticked on a page opened before (removed meanwhile): the rest of the form is saved
    person.refresh_from_db()
    again = enroller_client.post(change_url(person), person_form(person, remove_photos=[drop.pk], notes="later"))
    assert again.status_code == 302, again.content.decode()[:1500]
    person.refresh_from_db()
    assert person.notes == "later" and list(FacePhoto.objects.values_list("pk", flat=True)) == [keep.pk]


# ------------------------------------------------------------------------------------------ actions

def test_rebuild_action_queues_a_forced_run(enroller_client, person, enqueued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = enroller_client.post(CHANGELIST, {"action": "rebuild_index", "_selected_action": [person.pk]})
    assert response.status_code == 302
    run = TrainingRun.objects.get()
    assert enqueued == [{"run_id": run.pk, "countdown": 0.0, "force": True}]
    assert run.requested_by.username == "enroller"


def test_rebuild_button(enroller_client, enqueued, django_capture_on_commit_callbacks):
    url = reverse("admin:enrollment_person_rebuild")
    assert enroller_client.get(url).status_code == 405
    with django_capture_on_commit_callbacks(execute=True):
        assert enroller_client.post(url).status_code == 302
    assert len(enqueued) == 1 and enqueued[0]["force"]
    # pressed again while that run is queued: it joins it, and who asked is audited both times
    with django_capture_on_commit_callbacks(execute=True):
        again = enroller_client.post(url, {"next": "https://evil.example/admin/"})
    assert again.status_code == 302 and again["Location"] == reverse("admin:enrollment_trainingrun_changelist")
    back = enroller_client.post(url, {"next": CHANGELIST})
    assert back["Location"] == CHANGELIST
    run = TrainingRun.objects.get()
    asked = AuditEvent.objects.filter(action="rebuild", object_id=str(run.pk), actor="enroller")
    assert asked.count() == 3 and asked.filter(summary__endswith="joined").count() == 2


def test_deactivate_action(enroller_client, person, make_photo):
    make_photo(person)
    done = enroller_client.post(CHANGELIST, {"action": "deactivate", "_selected_action": [person.pk]}, follow=True)
    person.refresh_from_db()
    assert person.active is False and person.deactivated_at is not None   # when: attendance's past days
    assert AuditEvent.objects.filter(action="deactivate").exists()
    assert "1 person deactivated: no longer recognised; the index is being rebuilt." in done.content.decode()
    # nobody left to deactivate: said so, and no rebuild is claimed
    again = enroller_client.post(CHANGELIST, {"action": "deactivate", "_selected_action": [person.pk]}, follow=True)
    assert "Nobody was deactivated" in again.content.decode() and "rebuilt" not in again.content.decode()
    # and back: the action, as the change form's box (each saying when they are recognised again)
    back = enroller_client.post(CHANGELIST, {"action": "reactivate", "_selected_action": [person.pk]}, follow=True)
    person.refresh_from_db()
    assert person.active is True and "1 person reactivated: recognised again once the index" in back.content.decode()
    assert person.deactivated_at is None and person.inactive_periods.count() == 1   # cleared: the time away kept
    assert AuditEvent.objects.filter(action="update", summary__endswith="reactivated").exists()
    again = enroller_client.post(CHANGELIST, {"action": "reactivate", "_selected_action": [person.pk]}, follow=True)
    assert "Nobody was reactivated" in again.content.decode()
    for active, said in (("", "Deactivated: no longer recognised"), ("on", "Reactivated: recognised again")):
        saved = enroller_client.post(change_url(person), {**person_form(person), "active": active}, follow=True)
        assert said in saved.content.decode(), active
        person.refresh_from_db()
        assert (person.deactivated_at is None) == bool(active), active
    assert person.inactive_periods.count() == 2   # the box's reactivation too


def queries_of_action(client, action: str, people: list[Person]) -> int:
    """How many queries the people list's ``action`` on ``people`` ran (it answered a redirect)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        answer = client.post(CHANGELIST, {"action": action, "_selected_action": [p.pk for p in people]})
    assert answer.status_code == 302
    return len(queries)


def test_deactivating_and_reactivating_many_people_takes_no_more_queries_for_more_of_them(enroller_client):
    """The actions changed a person at a time: 7 queries each to deactivate, 14 to reactivate, 20 s
    and 30 s for a department of 1,700 (a scale review). Now at once: the same queries for 3 people
    as for 30, each still audited, their time away kept, and one rebuild asked for."""
    def act(action: str, people: list[Person]) -> int:
        return queries_of_action(enroller_client, action, people)

    few = [services.person_create(actor=None, full_name=f"Few {i}", staff_id=f"F-{i}") for i in range(3)]
    many = [services.person_create(actor=None, full_name=f"Many {i}", staff_id=f"M-{i}") for i in range(30)]
    runs = TrainingRun.objects.count()
    # (within a few: the first queues the rebuild, the second joins it; a person at a time was 7 each)
    first = act("deactivate", few)
    assert act("deactivate", many) <= first + 3
    assert not Person.objects.filter(active=True).exists() and TrainingRun.objects.count() == runs + 1
    assert TrainingRun.objects.order_by("-pk").first().requests == 2   # the second joined the first's
    assert AuditEvent.objects.filter(action="deactivate", object_type="enrollment.person").count() == 33
    assert set(Person.objects.values_list("deactivated_at", flat=True)) != {None}
    first = act("reactivate", few)
    assert act("reactivate", many) <= first + 3
    assert Person.objects.filter(active=True, deactivated_at=None).count() == 33
    assert AuditEvent.objects.filter(action="update", summary__endswith="active; reactivated").count() == 33
    assert all(p.inactive_periods.count() == 1 for p in few + many)


def test_reactivating_someone_without_a_usable_photo_does_not_say_they_are_recognised(enroller_client, person,
                                                                                     make_photo):
    """"Reactivated: recognised again once the index is rebuilt" was said of a person with no photo,
    or none the engine could use, whom no kiosk recognises. Found by a helper's review."""
    services.person_deactivate(person=person, actor=None)
    failed = make_photo(person)
    FacePhoto.objects.filter(pk=failed.pk).update(embedding_state=FacePhoto.Embedding.FAILED)
    back = enroller_client.post(CHANGELIST, {"action": "reactivate", "_selected_action": [person.pk]}, follow=True)
    assert "1 person reactivated" in back.content.decode()
    assert f"Eileen Collins: {admin_module.NO_USABLE_PHOTO}." in back.content.decode()
    services.person_deactivate(person=Person.objects.get(pk=person.pk), actor=None)
    person.refresh_from_db()
    saved = enroller_client.post(change_url(person), {**person_form(person), "active": "on"}, follow=True)
    assert f"Reactivated, but {admin_module.NO_USABLE_PHOTO}." in saved.content.decode()
    assert "recognised again" not in saved.content.decode()


def test_superuser_erases_after_confirmation(su_client, person, make_photo, django_capture_on_commit_callbacks):
    make_photo(person)
    data = {"action": "erase_biometric_data", "_selected_action": [person.pk]}
    confirm = su_client.post(CHANGELIST, data)
    assert confirm.status_code == 200 and b"Yes, erase" in confirm.content
    # it says that the attendance history goes too, and its red button is styled (admin.css loaded)
    assert b"their check-ins" in confirm.content and b"enrollment/admin.css" in confirm.content
    # and what it keeps of them: the staff id's keyed digest (docs/security.md, "Erased staff ids")
    assert b"staff id is kept as a keyed digest" in confirm.content
    assert Person.objects.filter(pk=person.pk).exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert su_client.post(CHANGELIST, {**data, "post": "yes"}).status_code == 302
    assert not Person.objects.exists() and not FacePhoto.objects.exists()


def test_the_erase_action_counts_those_erased_meanwhile_by_someone_else(su_client, person, superuser):
    """Erased by another admin between the confirmation and "Yes, erase", they dropped out of the
    selection and were counted nowhere: "0 people erased: ..." as a success."""
    def said(response) -> list[str]:
        return [str(m) for m in response.context["messages"]]

    others = [services.person_create(actor=None, full_name=f"Other {i}", staff_id=f"O-{i}") for i in range(3)]
    data = {"action": "erase_biometric_data", "_selected_action": [person.pk, others[0].pk], "post": "yes"}
    services.person_erase(person=Person.objects.get(pk=others[0].pk), actor=superuser)
    assert said(su_client.post(CHANGELIST, data, follow=True)) == [
        "1 person erased: photos, templates and index entries deleted (1 person had been erased already)."]
    data["_selected_action"] = [others[1].pk, others[2].pk]
    for other in others[1:]:
        services.person_erase(person=Person.objects.get(pk=other.pk), actor=superuser)
    assert said(su_client.post(CHANGELIST, data, follow=True)) == [
        "Nobody was erased: the people selected had been erased already."]
    # one who merely left the list's filter meanwhile (deactivated, on the active people's list) is not
    # said to be erased: their data is all there
    stays = services.person_create(actor=None, full_name="Still Here", staff_id="S-1")
    last = services.person_create(actor=None, full_name="Last One", staff_id="L-1")
    services.person_deactivate(person=stays, actor=superuser)
    filtered = su_client.post(CHANGELIST + "?active__exact=1", {**data, "_selected_action": [stays.pk, last.pk]},
                              follow=True)
    assert said(filtered) == [
        "1 person erased: photos, templates and index entries deleted.",
        f"Person #{stays.pk} was not erased: no longer in the list as filtered (changed meanwhile). Nothing of them "
        "was deleted; erase them again from their page."]
    assert Person.objects.filter(pk=stays.pk).exists() and not Person.objects.filter(pk=last.pk).exists()


def test_stopping_gallery_adaptation_counts_only_those_it_stopped(su_client, person):
    """Run twice on the same people, the action said "Gallery adaptation stopped for 0 people" as a success."""
    def said(response) -> list[str]:
        return [str(m) for m in response.context["messages"]]

    other = services.person_create(actor=None, full_name="Other One", staff_id="O-1")
    data = {"action": "stop_gallery_adaptation", "_selected_action": [person.pk, other.pk]}
    Person.objects.filter(pk=other.pk).update(gallery_adaptation=False)
    assert said(su_client.post(CHANGELIST, data, follow=True)) == [
        "Gallery adaptation stopped for 1 person: their check-ins add no photos (their photos stay as they are)."]
    assert said(su_client.post(CHANGELIST, data, follow=True)) == [
        "Nobody's gallery adaptation was stopped: it was stopped already for the people selected."]
    assert not Person.objects.filter(gallery_adaptation=True).exists()


def test_stopping_and_resuming_adaptation_for_many_takes_no_more_queries_for_more_of_them(su_client):
    """A person at a time, each its own transaction: 69 s for a whole site of 19,961 people, nothing
    shown for a minute (an admin review in Chromium). Now at once, each still audited as one."""
    def act(action: str, people: list[Person]) -> int:
        return queries_of_action(su_client, action, people)

    few = [services.person_create(actor=None, full_name=f"Few {i}", staff_id=f"F-{i}") for i in range(3)]
    many = [services.person_create(actor=None, full_name=f"Many {i}", staff_id=f"M-{i}") for i in range(30)]
    before = {p.pk: Person.objects.get(pk=p.pk).updated_at for p in few + many}
    first = act("stop_gallery_adaptation", few)
    assert act("stop_gallery_adaptation", many) <= first + 2   # a person at a time: 3 more each
    assert not Person.objects.filter(gallery_adaptation=True).exists()
    assert all(Person.objects.get(pk=pk).updated_at > at for pk, at in before.items())   # If-Match: a new version
    stops = AuditEvent.objects.filter(summary__startswith="stopped gallery adaptation for person #")
    assert sorted(int(e.object_id) for e in stops) == sorted(before) and {e.actor for e in stops} == {"root"}
    first = act("resume_gallery_adaptation", few)
    assert act("resume_gallery_adaptation", many) <= first + 2
    assert Person.objects.filter(gallery_adaptation=True).count() == 33
    assert AuditEvent.objects.filter(summary__startswith="resumed gallery adaptation for person #").count() == 33


def test_gallery_adaptation_stopped_can_be_resumed_and_is_audited(su_client, person, settings):
    """Stopped (by the list's action, or by removing a photo it had kept), adaptation could not be
    turned on again but in SQL. The list's "Resume" action does it, audited, counting only those it
    resumed, and says when the site's setting keeps it off anyway."""
    def said(response) -> list[str]:
        return [str(m) for m in response.context["messages"]]

    settings.MASKNET_GALLERY_ADAPT = False
    services.person_gallery_adaptation_stop(person=person, actor=None)
    data = {"action": "resume_gallery_adaptation", "_selected_action": [person.pk]}
    assert said(su_client.post(CHANGELIST, data, follow=True)) == [
        "Gallery adaptation resumed for 1 person: a confident check-in may add a photo of them again once "
        "MASKNET_GALLERY_ADAPT is on (it is off on this site)."]
    person.refresh_from_db()
    assert person.gallery_adaptation
    [record] = AuditEvent.objects.filter(object_type="enrollment.person", object_id=str(person.pk),
                                         summary__startswith="resumed gallery adaptation")
    assert record.summary == f"resumed gallery adaptation for person #{person.pk}" and record.actor == "root"
    assert said(su_client.post(CHANGELIST, data, follow=True)) == [
        "Nobody's gallery adaptation was resumed: it was on already for the people selected."]


def test_erase_page_for_one_person(su_client, person):
    url = reverse("admin:enrollment_person_erase", args=[person.pk])
    assert su_client.get(url).status_code == 200
    assert su_client.post(url, {"post": "yes"}).status_code == 302
    assert not Person.objects.exists()
    # "Yes, erase" again from a tab opened before: said to be done, not a bare 404
    for response in (su_client.post(url, {"post": "yes"}, follow=True), su_client.get(url, follow=True)):
        said = response.content.decode()
        assert response.status_code == 200 and f"Person #{person.pk} had been erased already" in said


def test_enroller_cannot_erase_or_delete(enroller_client, person):
    page = enroller_client.get(CHANGELIST).content.decode()
    assert "erase_biometric_data" not in page and "delete_selected" not in page
    enroller_client.post(CHANGELIST, {"action": "erase_biometric_data", "_selected_action": [person.pk],
                                      "post": "yes"})
    assert enroller_client.get(reverse("admin:enrollment_person_erase", args=[person.pk])).status_code == 403
    assert enroller_client.get(reverse("admin:enrollment_person_delete", args=[person.pk])).status_code == 403
    assert Person.objects.filter(pk=person.pk).exists()
    assert not AuditEvent.objects.filter(action="erase").exists()


def test_django_admin_history_keeps_no_name_and_erasure_clears_it(su_client, django_capture_on_commit_callbacks):
    """Django's own admin history ("Recent actions") stores ``str(obj)``: for people only their id,
    and erasure deletes the person's rows (also rows written by an earlier version with the name)."""
    from django.contrib.admin.models import CHANGE, LogEntry
    from django.contrib.contenttypes.models import ContentType

    assert su_client.post(reverse("admin:enrollment_person_add"),
                          {"full_name": "Sally Ride", "staff_id": "S-7", "active": "on"}).status_code == 302
    person = Person.objects.get(staff_id="S-7")
    assert su_client.post(change_url(person), person_form(person, department="Orbit")).status_code == 302
    rows = LogEntry.objects.filter(object_id=str(person.pk))
    assert rows.count() == 2 and {r.object_repr for r in rows} == {f"person #{person.pk}"}
    su_client.get(CHANGELIST)   # shows (and so ends) the "was changed successfully" notices
    home = su_client.get(reverse("admin:index")).content.decode()
    assert f"person #{person.pk}" in home and "Sally Ride" not in home and "S-7" not in home
    LogEntry.objects.create(user_id=rows[0].user_id, content_type=ContentType.objects.get_for_model(Person),
                            object_id=str(person.pk), object_repr=str(person), action_flag=CHANGE)  # an old row
    with django_capture_on_commit_callbacks(execute=True):
        services.person_erase(person=person, actor=None)
    assert not LogEntry.objects.filter(object_id=str(person.pk)).exists()
    assert "Sally Ride" not in su_client.get(reverse("admin:index")).content.decode()


def test_a_view_only_visit_does_not_disable_uploads_for_enrollers(client, enroller, person):
    """The admin's form class shares PersonForm's field objects: a visitor who may not add photos
    must not switch the upload off for everybody who comes after (nor pin the photo list)."""
    import re

    from django.contrib.auth.models import Permission

    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=("view_person", "view_facephoto")))
    other = services.person_create(actor=None, full_name="Tom Hanks", staff_id="T-2")
    TrainingRun.objects.create(reason="test", state=TrainingRun.State.FAILED, error="OSError: /srv/index full")
    client.force_login(viewer)
    page = client.get(change_url(other))
    assert page.status_code == 200 and "No photos yet" in page.content.decode()   # the grid, read-only
    assert "/srv/index full" not in page.content.decode()     # runs are for view_trainingrun, as status.json
    # nor the live status script: its socket and status.json would refuse this user every 3 s forever
    assert "training.js" not in page.content.decode() and "data-poll" not in page.content.decode()
    client.force_login(enroller)
    html = client.get(change_url(person)).content.decode()
    (upload,) = re.findall(r'<input[^>]*name="photos"[^>]*>', html)
    assert "disabled" not in upload


def test_nobody_deletes_people_directly(su_client, person):
    assert su_client.get(reverse("admin:enrollment_person_delete", args=[person.pk])).status_code == 403


def test_plain_staff_sees_nothing(client, plain_staff, person, make_photo):
    photo = make_photo(person)
    client.force_login(plain_staff)
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(reverse("admin:enrollment_person_capture", args=[person.pk])).status_code == 403
    assert client.get(reverse("enrollment:photo-thumb", args=[photo.pk])).status_code == 403


# ------------------------------------------------------------------------------------------ photos

def test_photos_are_served_only_to_authorised_staff(client, enroller, person, make_photo, settings, monkeypatch):
    photo = make_photo(person)
    url = reverse("enrollment:photo-image", args=[photo.pk])
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    assert client.get(settings.MEDIA_URL + photo.image.name).status_code == 404  # no public media URL
    client.force_login(enroller)
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    # never stored: a browser's disk cache would keep the face after logout and after an erasure
    assert response["Cache-Control"] == "private, no-store"
    assert b"".join(response.streaming_content) == open(photo.image.path, "rb").read()
    thumb = client.get(reverse("enrollment:photo-thumb", args=[photo.pk]))
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/jpeg"
    assert thumb["Cache-Control"] == "private, no-store"
    from PIL import Image

    assert Image.open(io.BytesIO(thumb.content)).size == (64, 64)
    # a file the server cannot read (restored from a backup with other owners): 404, as the thumbnail
    from django.core.files.storage import default_storage

    def refused(name, mode="rb"):
        raise PermissionError(13, "Permission denied", name)

    monkeypatch.setattr(default_storage, "open", refused)
    assert client.get(url).status_code == 404
    assert client.get(reverse("enrollment:photo-thumb", args=[photo.pk])).status_code == 404



def stored_photo(person: Person, data: bytes, ext: str) -> FacePhoto:
    """A photo row for ``data`` as stored (no checks: the file is what the thumbnail reads)."""
    import uuid

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    name = default_storage.save(f"faces/{person.pk}/{uuid.uuid4().hex}{ext}", ContentFile(data))
    return FacePhoto.objects.create(person=person, image=name, sha256=uuid.uuid4().hex, width=1, height=1)


def thumbnail_of(client, photo: FacePhoto):
    from PIL import Image

    response = client.get(reverse("enrollment:photo-thumb", args=[photo.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    return Image.open(io.BytesIO(response.content))


def test_thumbnails_are_upright_despite_broken_exif_and_16_bit_grey_is_not_white(enroller_client, person):
    """The thumbnail is decoded as the engine decodes the photo it accepted: EXIF orientation applied
    and broken EXIF ignored (ImageOps.exif_transpose raised TypeError: a 500), 16-bit grey scaled
    (convert("RGB") clipped it almost white)."""
    import struct

    import numpy as np

    from tests.test_decode import _jpeg_with_exif

    orientation_6, text_resolution = (0x0112, 3, 1, struct.pack("<HH", 6, 0)), (0x011A, 2, 4, b"ab\0\0")
    rotated = stored_photo(person, _jpeg_with_exif([orientation_6, text_resolution]), ".jpg")
    assert thumbnail_of(enroller_client, rotated).size == (48, 64)
    buf = io.BytesIO()
    from PIL import Image

    Image.fromarray(np.tile(np.linspace(0, 65535, 256, dtype=np.uint16), (32, 1))).save(buf, "PNG")
    grey = np.asarray(thumbnail_of(enroller_client, stored_photo(person, buf.getvalue(), ".png")).convert("L"))
    assert grey.shape == (24, 192) and 0.4 < (grey > 127).mean() < 0.6    # clipped: 99.6% white


def test_a_photo_that_cannot_be_decoded_has_no_thumbnail(enroller_client, person):
    from tests.test_decode import png_header_only

    for data, ext in ((b"\x89PNG\r\n\x1a\n not a picture", ".png"),
                      (png_header_only(20_000, 20_000), ".png")):     # a decompression bomb's header
        photo = stored_photo(person, data, ext)
        assert enroller_client.get(reverse("enrollment:photo-thumb", args=[photo.pk])).status_code == 404

def test_photo_admin_delete_goes_through_the_service(enroller_client, person, make_photo,
                                                     django_capture_on_commit_callbacks):
    photo = make_photo(person)
    url = reverse("admin:enrollment_facephoto_delete", args=[photo.pk])
    # the confirmation names what goes with it: it said "Photo templatess: 1", "PhotoTemplates object (6)"
    html = enroller_client.get(url).content.decode()
    assert "templatess" not in html and "PhotoTemplates object" not in html
    assert f"templates of photo #{photo.pk} (" in html
    with django_capture_on_commit_callbacks(execute=True):
        assert enroller_client.post(url, {"post": "yes"}).status_code == 302
    assert not FacePhoto.objects.exists()
    assert AuditEvent.objects.filter(action="photo_remove").exists()


def test_removing_from_the_photo_list_warns_as_the_persons_page_does_and_goes_back_to_it(
        enroller_client, person, make_photo, django_capture_on_commit_callbacks):
    """Removing a person's bare-faced photo from the Photos list (or its own page) left them recognised
    only while masked, without a word, and a delete from its page landed on the admin's home page, the
    list's filters lost. Found by a helper's review."""
    masked, bare, other = make_photo(person), make_photo(person), make_photo(person)
    FacePhoto.objects.filter(pk=masked.pk).update(masked=True)
    url = reverse("admin:enrollment_facephoto_delete", args=[bare.pk])
    with django_capture_on_commit_callbacks(execute=True):
        gone = enroller_client.post(url + "?_changelist_filters=masked__exact%3D0", {"post": "yes"})
    assert gone.status_code == 302
    assert gone.url == reverse("admin:enrollment_facephoto_changelist") + "?masked__exact=0"
    text = " ".join(str(m) for m in get_messages(gone.wsgi_request))
    assert "The index is being rebuilt" in text and "shows a face mask" not in text   # one bare photo left
    changelist = reverse("admin:enrollment_facephoto_changelist")
    with django_capture_on_commit_callbacks(execute=True):
        done = enroller_client.post(changelist, {"action": "delete_selected", "_selected_action": [other.pk],
                                                 "post": "yes"}, follow=True)
    text = " ".join(str(m) for m in done.context["messages"])
    assert services.photos_masked_only_warning(person=person) in text, text
    assert list(FacePhoto.objects.values_list("pk", flat=True)) == [masked.pk]


# ------------------------------------------------------------------------------------------ capture

def test_capture_page(enroller_client, person, settings):
    settings.TIME_ZONE = "America/Sao_Paulo"
    html = enroller_client.get(reverse("admin:enrollment_person_capture", args=[person.pk])).content.decode()
    assert 'data-time-zone="America/Sao_Paulo"' in html   # the bursts' times in the site's zone
    assert "getUserMedia" not in html  # the script is a static file
    assert "enrollment/capture.js" in html and reverse("admin:enrollment_person_capture_save", args=[person.pk]) in html
    assert ">Take a photo</button>" in html   # one is kept: the burst's best ("Take 5 photos" promised five)


@pytest.mark.parametrize("loaded", [False, True], ids=["after a start", "models loaded"])
def test_the_pages_that_check_photos_load_the_face_models_as_they_open(client, enroller, person, monkeypatch,
                                                                       no_engine_warm_up, loaded):
    """The first photo check after a server start waited for the models to load (5-8 s) with no word
    of it, where the kiosk says "Getting ready…": the person's form and the capture page start the
    load as they open (as a kiosk's socket does), and say that it is under way while it is."""
    import re

    from django.contrib.auth.models import Permission

    monkeypatch.setattr(recognizer, "_loaded", loaded)
    client.force_login(enroller)
    form = client.get(change_url(person)).content.decode()
    capture = client.get(reverse("admin:enrollment_person_capture", args=[person.pk])).content.decode()
    added = client.get(reverse("admin:enrollment_person_add")).content.decode()
    assert len(no_engine_warm_up) == 3   # the change form, the capture page, the add form
    assert ("The server is still loading its face checks" in form) is not loaded
    assert ("The server is still loading its face checks" in added) is not loaded
    assert re.search(r'<div id="mn-capture"[^>]*data-engine-ready="{}"'.format("1" if loaded else "0"), capture)
    # a form saved loads them itself; a visitor who may not add photos starts no load
    client.post(change_url(person), person_form(person, notes="seen"))
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=("view_person", "view_facephoto")))
    client.force_login(viewer)
    assert client.get(change_url(person)).status_code == 200 and len(no_engine_warm_up) == 3


def test_warm_soon_loads_the_engine_once_in_a_thread_of_its_own(monkeypatch):
    """Pages opened while the models load start no second load; a load that failed (the models
    missing) is tried again by the next page."""
    import threading

    from recognition.engine.errors import ModelsMissing

    started, release, loads = threading.Event(), threading.Event(), []

    def slow_load(models_dir, config):
        loads.append(threading.current_thread().name)
        started.set()
        assert release.wait(5)
        return object()

    monkeypatch.setattr(recognizer, "load_engine", slow_load)
    monkeypatch.setattr(recognizer, "_loaded", False)
    monkeypatch.setattr(recognizer, "_warming", False)
    warm_soon = WARM_SOON   # the real one: the suite's pages start no load (tests/conftest.py)
    warm_soon()
    assert started.wait(5) and not recognizer.engine_loaded()   # returned at once, the load under way
    warm_soon()
    warm_soon()
    release.set()
    for _ in range(100):
        if recognizer.engine_loaded() and not recognizer._warming:
            break
        threading.Event().wait(0.05)
    assert loads == ["engine-warm"] and recognizer.engine_loaded()
    warm_soon()   # loaded: nothing more
    assert loads == ["engine-warm"]

    def missing(models_dir, config):
        loads.append("missing")
        raise ModelsMissing("no models")

    monkeypatch.setattr(recognizer, "load_engine", missing)
    monkeypatch.setattr(recognizer, "_loaded", False)
    for _ in range(2):
        warm_soon()
        for _ in range(100):
            if not recognizer._warming:
                break
            threading.Event().wait(0.05)
    assert loads == ["engine-warm", "missing", "missing"] and not recognizer.engine_loaded()


def test_capture_needs_the_right_to_see_people_too(client, plain_staff, person):
    """Adding photos alone does not open the capture pages: they show the person's name by id."""
    from django.contrib.auth.models import Permission

    plain_staff.user_permissions.add(Permission.objects.get(codename="add_facephoto"))
    client.force_login(plain_staff)
    urls = [reverse(f"admin:enrollment_person_{page}", args=[person.pk]) for page in ("capture", "capture_check",
                                                                                       "capture_save")]
    assert client.get(urls[0]).status_code == 403
    assert [client.post(url).status_code for url in urls[1:]] == [403, 403]
    assert person.full_name not in client.get(urls[0]).content.decode()
    plain_staff.user_permissions.add(Permission.objects.get(codename="view_person"))
    client.force_login(plain_staff)
    assert client.get(urls[0]).status_code == 200


@pytest.mark.models
def test_capture_check_gives_live_feedback(enroller_client, person, engine, astronaut_jpeg, gradient_png):
    url = reverse("admin:enrollment_person_capture_check", args=[person.pk])
    good = enroller_client.post(url, {"frame": SimpleUploadedFile("f.jpg", astronaut_jpeg, "image/jpeg")}).json()
    assert good["ok"] and good["masked"] is False and len(good["box"]) == 4
    bad = enroller_client.post(url, {"frame": SimpleUploadedFile("f.png", gradient_png, "image/png")}).json()
    assert bad == {**bad, "ok": False, "code": "no_face"}
    assert not FacePhoto.objects.exists()


def test_capture_check_says_which_of_missing_or_too_large(enroller_client, person, settings):
    """A request without a frame and one with a frame over MASKNET_MAX_FRAME_BYTES are told apart,
    the second with the limit, before any analysis (no models needed)."""
    settings.MASKNET_MAX_FRAME_BYTES = 2048
    url = reverse("admin:enrollment_person_capture_check", args=[person.pk])
    missing = enroller_client.post(url, {})
    assert missing.status_code == 400
    assert missing.json() == {"ok": False, "code": "missing", "message": "No frame was sent."}
    big = enroller_client.post(url, {"frame": SimpleUploadedFile("f.jpg", b"\xff\xd8\xff" + b"0" * 4096, "image/jpeg")})
    assert big.status_code == 400
    assert big.json() == {"ok": False, "code": "too_large", "message": "The frame is too large (at most 2 KiB)."}
    assert not FacePhoto.objects.exists()


@pytest.mark.parametrize(("limit", "said"), [(1000, "1000 bytes"), (1536, "1536 bytes"), (3072, "3 KiB")])
def test_capture_check_names_a_limit_that_is_not_whole_kibibytes_in_bytes(enroller_client, person, settings,
                                                                        limit, said):
    """``MASKNET_MAX_FRAME_BYTES`` may be any number from 1: a limit of 1000 bytes read 'at most 0
    KiB', and 1536 bytes 'at most 1 KiB'."""
    settings.MASKNET_MAX_FRAME_BYTES = limit
    url = reverse("admin:enrollment_person_capture_check", args=[person.pk])
    big = enroller_client.post(url, {"frame": SimpleUploadedFile("f.jpg", b"\xff\xd8\xff" + b"0" * 4096, "image/jpeg")})
    assert big.json()["message"] == f"The frame is too large (at most {said})."


def test_capture_without_models_answers_a_503_the_page_can_show(enroller_client, person, monkeypatch):
    from enrollment import recognizer
    from recognition.engine.errors import ModelsMissing

    def missing():
        raise ModelsMissing("no models")

    monkeypatch.setattr(recognizer, "get_engine", missing)
    frame = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (64, 48)).save(frame, "JPEG")
    for name, field in (("check", "frame"), ("save", "photos")):
        url = reverse(f"admin:enrollment_person_capture_{name}", args=[person.pk])
        answer = enroller_client.post(url, {field: SimpleUploadedFile("f.jpg", frame.getvalue(), "image/jpeg")})
        assert answer.status_code == 503 and answer.json()["code"] == "models_missing", name
    assert not FacePhoto.objects.exists()


def burst(*frames: bytes) -> list[SimpleUploadedFile]:
    """A webcam burst's files, as the capture page names them."""
    return [SimpleUploadedFile(f"webcam-1-{i}.jpg", data, "image/jpeg") for i, data in enumerate(frames)]


@pytest.mark.models
def test_capture_save_keeps_the_best_good_photo_alone(enroller_client, person, engine, astronaut_jpeg,
                                                      astronaut_bgr, gradient_png, monkeypatch):
    """A burst's frames are one moment, about one photo's worth: five near-copies of a face made the
    list say "5 photos" and left the person out of "fewer than 3" photos. Its best good frame is
    stored, its face analysed once."""
    import cv2

    softer = jpeg(cv2.GaussianBlur(astronaut_bgr, (0, 0), 1.0))   # passes the checks, scores lower
    inspected = []
    real_inspect = photo_services.photo_inspect
    monkeypatch.setattr(photo_services, "photo_inspect", lambda **kw: inspected.append(1) or real_inspect(**kw))
    url = reverse("admin:enrollment_person_capture_save", args=[person.pk])
    result = enroller_client.post(url, {"photos": burst(softer, gradient_png, astronaut_jpeg, softer)}).json()
    photo = FacePhoto.objects.get()
    assert result == {"saved": [photo.pk], "refused": [], "warnings": [], "frames": 4, "good": 3}
    assert photo.source == "webcam" and photo.quality_score == real_inspect(data=astronaut_jpeg).quality_score
    assert photo.sha256 == hashlib.sha256(astronaut_jpeg).hexdigest()
    # once a distinct frame: neither the chosen one again, nor a frame identical to an earlier one
    # (a frozen camera sends the same picture five times)
    assert len(inspected) == 3
    few = enroller_client.get(CHANGELIST, {"photos": "lt3"}).content.decode()
    assert person.full_name in few      # still listed among the people who need more photos
    # to an inactive person: the page is told they are not recognised until reactivated, as an upload
    # says (a helper's review found the webcam page's "Saved" alone)
    services.person_deactivate(person=person, actor=None)
    flipped = jpeg(np.ascontiguousarray(astronaut_bgr[:, ::-1]))
    later = enroller_client.post(url, {"photos": burst(flipped)}).json()
    assert later["saved"] and later["warnings"][-1] == services.photos_inactive_warning(person=person), later


def test_capture_save_takes_1_to_10_frames(enroller_client, person, monkeypatch):
    """Each frame is a face analysis: a request of 100 frames (Django's own cap) kept a worker
    busy for half a minute. More than CAPTURE_MAX_FRAMES, or none, is refused before any is looked at."""
    from enrollment import admin as enrollment_admin

    monkeypatch.setattr(photo_services, "photo_inspect", lambda **kw: pytest.fail("a frame was inspected"))
    url = reverse("admin:enrollment_person_capture_save", args=[person.pk])
    frames = [b"\xff\xd8\xff" + bytes([i]) for i in range(enrollment_admin.CAPTURE_MAX_FRAMES + 1)]
    for sent, code in ((frames, "too_many"), ([], "missing")):
        r = enroller_client.post(url, {"photos": burst(*sent)})
        assert r.status_code == 400 and r.json()["code"] == code, r.content
        assert "1 to 10 photos" in r.json()["message"]
    assert not FacePhoto.objects.exists()


@pytest.mark.models
def test_capture_save_of_a_burst_without_a_good_photo_says_why_for_each(enroller_client, person, engine,
                                                                        gradient_png):
    url = reverse("admin:enrollment_person_capture_save", args=[person.pk])
    result = enroller_client.post(url, {"photos": burst(gradient_png, gradient_png)}).json()
    assert result["saved"] == [] and result["good"] == 0 and result["frames"] == 2
    assert [r["code"] for r in result["refused"]] == ["no_face", "no_face"]
    assert not FacePhoto.objects.exists()


@pytest.mark.models
@pytest.mark.parametrize("code", ["duplicate", "enrolled_elsewhere"])
def test_capture_save_stores_no_other_frame_when_the_best_is_refused(enroller_client, person, engine, code,
                                                                     astronaut_jpeg, astronaut_bgr):
    """The best frame already this person's (a frozen camera) or someone else's: the other frames
    are the same moment, so none is stored in its place; the page is told why the best was not."""
    import cv2

    owner = person if code == "duplicate" else services.person_create(actor=None, full_name="Other", staff_id="O-1")
    services.photo_add(person=owner, data=astronaut_jpeg, actor=None)
    softer = jpeg(cv2.GaussianBlur(astronaut_bgr, (0, 0), 1.0))
    url = reverse("admin:enrollment_person_capture_save", args=[person.pk])
    result = enroller_client.post(url, {"photos": burst(softer, astronaut_jpeg)}).json()
    assert result["saved"] == [] and result["good"] == 2
    assert [(r["name"], r["code"]) for r in result["refused"]] == [("webcam-1-1.jpg", code)]
    assert FacePhoto.objects.count() == 1



@pytest.mark.models
def test_a_photo_of_someone_already_enrolled_is_pointed_out(enroller_client, person, engine, astronaut_jpeg,
                                                            astronaut_bgr):
    """The photo is kept (twins exist), with a warning naming the person whose face it matches."""
    services.photo_add(person=person, data=astronaut_jpeg, actor=None)
    rebuild_index_task(services.index_rebuild_request(actor=None, reason="t", force=True).pk, force=True)
    other = services.person_create(actor=None, full_name="Eileen Test", staff_id="E-2")
    copy = jpeg(np.ascontiguousarray(astronaut_bgr[:, ::-1]), quality=85)
    url = reverse("admin:enrollment_person_capture_save", args=[other.pk])
    result = enroller_client.post(url, {"photos": [SimpleUploadedFile("a.jpg", copy, "image/jpeg")]}).json()
    assert len(result["saved"]) == 1
    (warning,) = result["warnings"]
    assert f"matches {person.full_name} (#{person.pk}" in warning and "check-ins could go to either" in warning
@pytest.mark.models
def test_capture_save_for_a_person_erased_meanwhile_answers_404(enroller_client, person, engine, astronaut_jpeg,
                                                                 monkeypatch):
    url = reverse("admin:enrollment_person_capture_save", args=[person.pk])
    real_inspect = photo_services.photo_inspect

    def erased_meanwhile(**kwargs):
        Person.objects.filter(pk=person.pk).delete()
        return real_inspect(**kwargs)

    monkeypatch.setattr(photo_services, "photo_inspect", erased_meanwhile)
    answer = enroller_client.post(url, {"photos": [SimpleUploadedFile("a.jpg", astronaut_jpeg, "image/jpeg")]})
    assert answer.status_code == 404 and answer.json()["code"] == "person_gone"
    assert not FacePhoto.objects.exists()



@pytest.mark.parametrize(("name", "field"), [("check", "frame"), ("save", "photos")])
def test_capture_for_a_person_already_erased_answers_person_gone(enroller_client, person, name, field):
    """The page stops its camera on this answer (an HTML 404 made it ask again twice a second)."""
    url = reverse(f"admin:enrollment_person_capture_{name}", args=[person.pk])
    services.person_erase(person=person, actor=None)
    answer = enroller_client.post(url, {field: SimpleUploadedFile("f.jpg", b"\xff\xd8", "image/jpeg")})
    assert answer.status_code == 404 and answer.json()["code"] == "person_gone"
    # the page itself, opened afresh, is the admin's usual 404
    assert enroller_client.get(reverse("admin:enrollment_person_capture", args=[person.pk])).status_code == 404

# ------------------------------------------------------------------------------------------ runs, versions

def test_training_runs_and_versions_pages(enroller_client, person, make_photo):
    make_photo(person)
    run = services.index_rebuild_request(actor=None, reason="test", force=True)
    rebuild_index_task(run.pk, force=True)
    html = enroller_client.get(reverse("admin:enrollment_trainingrun_changelist")).content.decode()
    assert f'data-run="{run.pk}"' in html and "succeeded" in html
    status = enroller_client.get(reverse("admin:enrollment_trainingrun_status")).json()
    version = IndexVersion.objects.current()
    assert status["runs"][0]["id"] == run.pk and status["index"]["version"] == version.pk
    assert status["index"]["outdated"] is False     # made by this recognizer: the page drops its note
    assert enroller_client.get(reverse("admin:enrollment_indexversion_changelist")).status_code == 200
    assert enroller_client.get(reverse("admin:enrollment_trainingrun_change", args=[run.pk])).status_code == 200
    assert enroller_client.post(reverse("admin:enrollment_indexversion_delete", args=[version.pk]),
                                {"post": "yes"}).status_code == 403


def test_roles_of_the_enrollers_group(enroller, superuser):
    assert enroller.has_perms(["enrollment.add_person", "enrollment.add_facephoto", "enrollment.delete_facephoto",
                               "enrollment.rebuild_index"])
    assert not enroller.has_perm("enrollment.erase_person")
    assert not enroller.has_perm("audit.view_auditevent")
    assert superuser.has_perm("enrollment.erase_person") and superuser.has_perm("audit.view_auditevent")
    assert not User.objects.get(pk=enroller.pk).is_superuser


def test_index_version_thresholds_show_the_operator_offset():
    from django.contrib import admin

    from enrollment.admin import IndexVersionAdmin

    shown = IndexVersionAdmin(IndexVersion, admin.site).thresholds
    fitted = {"unmasked": 0.696, "masked": 0.765, "source": "engine"}
    assert shown(IndexVersion(metrics={"thresholds": fitted})) == "0.696 / 0.765 (engine)"
    offset = IndexVersion(metrics={"thresholds": {**fitted, "offset": 0.02}})
    assert shown(offset) == "0.696 / 0.765 (engine, offset +0.02)"
    assert shown(IndexVersion(metrics={})) == "–"


def test_an_enroller_sees_only_the_day_of_a_photo_kept_from_a_check_in(enroller_client, person, make_photo,
                                                                       admin_client):
    """Gallery adaptation adds the photo seconds after a check-in: its time is the check-in's, which
    Enrollers may not see (docs/security.md); the day alone is shown to them."""
    from datetime import UTC, datetime

    kept, uploaded = make_photo(person), make_photo(person)
    at = datetime(2026, 12, 1, 8, 59, tzinfo=UTC)
    FacePhoto.objects.filter(pk=kept.pk).update(source=FacePhoto.Source.CHECKIN, created_at=at)
    FacePhoto.objects.filter(pk=uploaded.pk).update(created_at=at.replace(hour=7, minute=14))
    pages = [reverse("admin:enrollment_facephoto_changelist"),
             reverse("admin:enrollment_facephoto_change", args=[kept.pk])]
    for url in pages:
        page = enroller_client.get(url).content.decode()
        assert "2026-12-01" in page and "08:59" not in page and "8:59" not in page, url
    assert "07:14" in enroller_client.get(pages[0]).content.decode()   # an upload's time is no check-in's
    assert "8:59" in admin_client.get(pages[1]).content.decode()      # those who may see check-ins do
    # nor found by filtering on the time (it was, to the second, by ?created_at__lt=...)
    for lookup in ("created_at__lt", "created_at__gte", "created_at__hour", "created_at"):
        probe = enroller_client.get(pages[0], {"source": "checkin", lookup: "2026-12-01 08:59:30"})
        assert probe.status_code == 400 and "08:59" not in probe.content.decode(), lookup
    assert admin_client.get(pages[0], {"created_at__lt": "2026-12-01 08:59:30+00:00"}).status_code == 200


def test_lists_are_not_filtered_through_check_ins_for_those_who_may_not_see_them(enroller_client, admin_client,
                                                                                 person):
    """``?checkins__isnull=False`` or ``?checkins__id__gt=N`` on the people list (and the kiosks') named
    who had checked in, and who had just arrived, to an Enroller whom every check-in page refuses."""
    from django.contrib.auth.models import Permission
    from django.test import Client
    from django.utils import timezone

    from recognition import services as recognition
    from recognition.models import CheckIn

    kiosk, _code = recognition.kiosk_create(actor=None, name="Loading bay")
    other = services.person_create(actor=None, full_name="Cy Absent", staff_id="C-1")
    first = CheckIn.objects.create(person=person, kiosk=kiosk, site="main", local_date=timezone.localdate(),
                                   window="main|1", score=0.9)
    people = reverse("admin:enrollment_person_changelist")
    kiosks = reverse("admin:recognition_kiosk_changelist")
    viewer = User.objects.create_user("kiosks", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_kiosk"))
    kiosk_viewer = Client()   # the fixtures' clients are one client
    kiosk_viewer.force_login(viewer)
    for who, url in ((enroller_client, people), (kiosk_viewer, kiosks)):
        for lookup, value in (("checkins__isnull", "False"), ("checkins__id__gt", "0"), ("checkins__id", first.pk),
                              ("checkins", first.pk)):
            answer = who.get(url, {lookup: value})
            assert answer.status_code == 400 and person.full_name not in answer.content.decode(), (url, lookup)
    # those who may see check-ins still may
    listed = admin_client.get(people, {"checkins__isnull": "False"}).content.decode()
    assert person.full_name in listed and other.full_name not in listed


def test_a_photo_kept_from_a_check_in_says_until_when(admin_client, person, make_photo, settings):
    """Kept photos expire (MASKNET_RETENTION_ADAPTED_DAYS): the person's page and the photo's say the day."""
    from datetime import UTC, datetime

    kept, uploaded = make_photo(person), make_photo(person)
    FacePhoto.objects.filter(pk=kept.pk).update(source=FacePhoto.Source.CHECKIN,
                                                created_at=datetime(2026, 12, 1, 8, 59, tzinfo=UTC))
    grid = admin_client.get(reverse("admin:enrollment_person_change", args=[person.pk])).content.decode()
    assert grid.count("kept until") == 1 and "check-in, kept until 2027-05-30" in grid
    page = admin_client.get(reverse("admin:enrollment_facephoto_change", args=[kept.pk])).content.decode()
    assert "2027-05-30 (MASKNET_RETENTION_ADAPTED_DAYS; deleted by the daily purge after then)" in page
    upload = admin_client.get(reverse("admin:enrollment_facephoto_change", args=[uploaded.pk])).content.decode()
    assert "while the person is enrolled" in upload and "2027-" not in upload
    settings.MASKNET_RETENTION_ADAPTED_DAYS = 0   # kept as long as the person's other photos
    grid = admin_client.get(reverse("admin:enrollment_person_change", args=[person.pk])).content.decode()
    assert "kept until" not in grid


def test_a_form_opened_before_someone_elses_change_does_not_undo_it(su_client, person):
    """Admin A opens Ana's page; B deactivates her (she left); A fixes a typo in the notes and saves:
    the form's still-ticked "active" reactivated her, unseen. Now the save is refused and says why."""
    page = su_client.get(change_url(person)).content.decode()
    seen = page.split('name="seen" value="')[1].split('"')[0]
    services.person_deactivate(person=Person.objects.get(pk=person.pk), actor=None)
    response = su_client.post(change_url(person), person_form(person, notes="typo fixed", seen=seen))
    assert response.status_code == 200 and "Someone else changed this person" in response.content.decode()
    person.refresh_from_db()
    assert not person.active and person.notes != "typo fixed"
    # drawn again, the form carries the new state, and saves
    fresh = su_client.get(change_url(person)).content.decode().split('name="seen" value="')[1].split('"')[0]
    person_now = Person.objects.get(pk=person.pk)
    saved = su_client.post(change_url(person), person_form(person_now, notes="typo fixed", seen=fresh))
    assert saved.status_code == 302
    person.refresh_from_db()
    assert not person.active and person.notes == "typo fixed"


def _meanwhile_in_clean(monkeypatch, change) -> list[BaseException]:
    """While the change form is checked (``PersonForm.clean``, after the admin read the person), run
    ``change`` in another thread and connection, giving it 1.5 s; its errors are returned (PostgreSQL
    row-lock tests: the thread blocks where the form holds a lock)."""
    import threading

    from django.db import connection

    from enrollment import admin as enrollment_admin

    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL only (SQLite serialises writers)")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            change()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)
        finally:
            connection.close()

    real, threads = enrollment_admin.PersonForm.clean, []

    def clean(self):
        threads.append(threading.Thread(target=run))
        threads[0].start()
        threads[0].join(1.5)               # without the form's lock, the change commits here
        return real(self)

    monkeypatch.setattr(enrollment_admin.PersonForm, "clean", clean)
    yield errors
    threads[0].join(20)


@pytest.mark.django_db(transaction=True)
def test_a_change_committed_while_the_form_is_checked_is_not_undone(su_client, person, monkeypatch):
    """The stale-page check compared the person as read at the start of the POST: a colleague's
    rename committed between that check and the save was overwritten by this form's. Now the
    change form's POST locks the row first and the rename lands after it (PostgreSQL)."""
    seen = su_client.get(change_url(person)).content.decode().split('name="seen" value="')[1].split('"')[0]
    race = _meanwhile_in_clean(monkeypatch, lambda: services.person_update(
        person=Person.objects.get(pk=person.pk), actor=None, full_name="Colleague's Name"))
    errors = next(race)
    response = su_client.post(change_url(person), person_form(person, full_name="Form's Name", seen=seen))
    next(race, None)
    assert not errors and response.status_code == 302
    assert Person.objects.get(pk=person.pk).full_name == "Colleague's Name"


@pytest.mark.django_db(transaction=True)
def test_a_form_removing_a_photo_during_an_erasure_waits_instead_of_deadlocking(su_client, person, make_photo,
                                                                               monkeypatch):
    """The change form locked the person, then (removing a photo) the photo; an erasure takes the
    photos, then the person: one of the two was aborted as a deadlock (PostgreSQL). The form now
    takes the photos first, and the erasure waits for it."""
    # the first photo: the one an erasure's lock statement takes first, before the person's row
    drop, other = make_photo(person), make_photo(person)
    race = _meanwhile_in_clean(monkeypatch, lambda: services.person_erase(
        person=Person.objects.get(pk=person.pk), actor=None))
    errors = next(race)
    response = su_client.post(change_url(person), person_form(person, remove_photos=[drop.pk]))
    next(race, None)
    assert not errors, errors
    assert response.status_code == 302
    assert not Person.objects.filter(pk=person.pk).exists() and not FacePhoto.objects.filter(pk=other.pk).exists()


def test_polling_the_status_takes_up_a_run_whose_worker_died(enroller_client, enqueued, monkeypatch,
                                                              django_capture_on_commit_callbacks):
    """The admin page polls status.json while its socket is down: a run whose worker died
    (embedded mode: the web process restarted mid-rebuild) showed "running 45 %" until someone
    drew an admin page again, which is what took it up."""
    from datetime import timedelta

    from django.utils import timezone

    long_ago = timezone.now() - timedelta(minutes=10)
    dead = TrainingRun.objects.create(reason="photo added", state=TrainingRun.State.RUNNING, progress=45,
                                      started_at=long_ago, heartbeat_at=long_ago, attempts=1)
    monkeypatch.setattr(index_services, "_resume_checked", 0.0)
    with django_capture_on_commit_callbacks(execute=True):
        assert enroller_client.get(reverse("admin:enrollment_trainingrun_status")).status_code == 200
    assert [c["run_id"] for c in enqueued] == [dead.pk]



def test_erasing_more_people_than_a_batch_says_so_and_erases_nobody(su_client, monkeypatch):
    """Selecting all of a long list: the confirmation posted one field a person, and over Django's
    1,000 fields "Yes, erase" got a bare 400; each erasure also rewrites the active index."""
    from enrollment import admin as enrollment_admin

    monkeypatch.setattr(enrollment_admin, "ERASE_BATCH_MAX", 2)
    people = [services.person_create(actor=None, full_name=f"P {i}", staff_id=f"P-{i}") for i in range(3)]
    data = {"action": "erase_biometric_data", "_selected_action": [p.pk for p in people]}
    for extra in ({}, {"post": "yes"}):
        response = su_client.post(CHANGELIST, {**data, **extra}, follow=True)
        assert "Erase at most 2 people at a time (3 selected)" in response.content.decode()
    assert Person.objects.count() == 3
    assert su_client.post(CHANGELIST, {**data, "_selected_action": [people[0].pk], "post": "yes"}).status_code == 302
    assert Person.objects.count() == 2


def test_reactivating_someone_erased_or_unsaveable_meanwhile_is_said_not_a_500(enroller_client, person, monkeypatch):
    from django.core.exceptions import ValidationError


    Person.objects.filter(pk=person.pk).update(active=False)
    other = services.person_create(actor=None, full_name="Other One", staff_id="O-1")
    Person.objects.filter(pk=other.pk).update(active=False)
    real = services.people_reactivate

    def erased_first(*, people, actor):   # the person erased between the list's read and the action
        Person.objects.filter(pk=person.pk).delete()
        return real(people=people, actor=actor)

    monkeypatch.setattr(services, "people_reactivate", erased_first)
    answer = enroller_client.post(CHANGELIST, {"action": "reactivate", "_selected_action": [person.pk, other.pk]},
                                  follow=True)
    assert answer.status_code == 200 and f"Person #{person.pk} was erased meanwhile" in answer.content.decode()
    assert "1 person reactivated" in answer.content.decode() and Person.objects.get(pk=other.pk).active
    monkeypatch.setattr(services, "people_reactivate", real)

    def refused(self, *args, **kwargs):   # a record an earlier release let in, a field now refused
        raise ValidationError({"notes": ["Too long."]})

    Person.objects.filter(pk=other.pk).update(active=False)
    monkeypatch.setattr(Person, "full_clean", refused)
    answer = enroller_client.post(CHANGELIST, {"action": "reactivate", "_selected_action": [other.pk]}, follow=True)
    assert answer.status_code == 200 and "was not reactivated: Too long." in answer.content.decode()
    assert "active already" not in answer.content.decode() and not Person.objects.get(pk=other.pk).active
    assert other.inactive_periods.count() == 1   # the first reactivation's alone


def test_a_failed_photo_says_whether_rebuilds_leave_it_out_or_try_it_again(admin_client, person, make_photo):
    """"failed" alone did not tell a photo rebuilds of this recognizer leave out (no face in it) from
    one the next rebuild tries again (its file unreadable then, or failed under other models)."""
    from enrollment import recognizer

    left_out, again, other, missing = (make_photo(person) for _ in range(4))
    FacePhoto.objects.filter(pk__in=[left_out.pk, again.pk, other.pk, missing.pk]).update(embedding_state="failed")
    FacePhoto.objects.filter(pk=left_out.pk).update(embed_failed_version=recognizer.template_version())
    FacePhoto.objects.filter(pk=other.pk).update(embed_failed_version="other-models")
    FacePhoto.objects.filter(pk=missing.pk).update(file_missing=True)
    changelist = reverse("admin:enrollment_facephoto_changelist")
    listing = admin_client.get(changelist).content.decode()
    assert listing.count("failed: left out of the index") == 1
    assert listing.count("failed: tried again at the next rebuild") == 2
    assert listing.count("failed: file missing from storage") == 1
    page = admin_client.get(reverse("admin:enrollment_facephoto_change", args=[left_out.pk])).content.decode()
    assert "failed: left out of the index (remove it, or add another photo)" in page
    page = admin_client.get(reverse("admin:enrollment_facephoto_change", args=[missing.pk])).content.decode()
    assert "failed: file missing from storage (restore the file, or remove the photo)" in page
    # the list filter finds each kind; "file missing" also a photo embedded before its file went
    # (the photo sweep's mark: the index holds it, its thumbnail is gone), which says so
    embedded, fine = make_photo(person), make_photo(person)
    FacePhoto.objects.filter(pk=embedded.pk).update(embedding_state="embedded", file_missing=True)
    page = admin_client.get(reverse("admin:enrollment_facephoto_change", args=[embedded.pk])).content.decode()
    assert "embedded; file missing from storage (restore the file, or remove the photo)" in page
    page = admin_client.get(reverse("admin:enrollment_facephoto_change", args=[fine.pk])).content.decode()
    assert "file missing" not in page
    for value, photos in (("left_out", [left_out]), ("file_missing", [missing, embedded]),
                          ("again", [again, other])):
        answer = admin_client.get(changelist, {"failure": value})
        assert answer.status_code == 200 and "file missing from storage" in answer.content.decode()  # the choice
        assert sorted(p.pk for p in answer.context["cl"].result_list) == sorted(p.pk for p in photos), value


def test_try_again_at_the_next_rebuild_clears_the_mark_of_photos_left_out(client, enroller, plain_staff, person,
                                                                          make_photo, enqueued,
                                                                          django_capture_on_commit_callbacks):
    """A photo left out of this recognizer's rebuilds (failed for a cause of its own) stayed out
    until it was removed and added again: the action has the next rebuild try it, is audited, and
    queues a rebuild; photos not left out are untouched; only those who may rebuild may use it."""
    from django.contrib.auth.models import Permission

    from enrollment import recognizer

    left_out, missing, embedded = make_photo(person), make_photo(person), make_photo(person)
    FacePhoto.objects.filter(pk__in=[left_out.pk, missing.pk]).update(embedding_state="failed")
    FacePhoto.objects.filter(pk=left_out.pk).update(embed_failed_version=recognizer.template_version(),
                                                    embed_attempts=1, embedding_error="NoFaceFound: no face found")
    FacePhoto.objects.filter(pk=missing.pk).update(file_missing=True)
    photos = reverse("admin:enrollment_facephoto_changelist")
    form = {"action": "embed_again", "_selected_action": [left_out.pk, missing.pk, embedded.pk]}
    # plain staff who may see photos, not rebuild: no such action
    plain_staff.user_permissions.add(Permission.objects.get(codename="view_facephoto"))
    client.force_login(plain_staff)
    assert "Try again at the next rebuild" not in client.get(photos).content.decode()
    assert client.post(photos, form, follow=True).status_code == 200
    assert FacePhoto.objects.get(pk=left_out.pk).embed_failed_version == recognizer.template_version()
    # an Enroller may (rebuild_index)
    client.force_login(enroller)
    assert "Try again at the next rebuild" in client.get(photos).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        page = client.post(photos, form, follow=True).content.decode()
    assert "1 photo to try again at the next rebuild; 2 of those selected were not left out" in page, page
    run = TrainingRun.objects.queued().get()
    assert f"training run #{run.pk}" in page and enqueued == [{"run_id": run.pk, "countdown": 0.0, "force": False}]
    left_out.refresh_from_db()
    assert (left_out.embedding_state, left_out.embed_failed_version, left_out.embed_attempts) == ("failed", "", 0)
    assert FacePhoto.objects.get(pk=missing.pk).file_missing   # untouched
    (event,) = AuditEvent.objects.filter(action="update", object_type="enrollment.facephoto")
    assert (event.object_id, event.actor) == (str(left_out.pk), "enroller")
    assert event.summary == (f"photo #{left_out.pk} of person #{person.pk} to be tried again at the next rebuild "
                             f"(left out after: NoFaceFound: no face found)")
    # again: nothing left out now, nothing queued or recorded
    page = client.post(photos, form, follow=True).content.decode()
    assert "No photo selected was left out of the index" in page
    assert TrainingRun.objects.count() == 1 and AuditEvent.objects.filter(action="update").count() == 1


def test_the_change_page_shows_the_inactive_periods_read_only(client, su_client, person, settings):
    """The periods attendance counts nobody missing in (migration 0021) were shown nowhere: the change page's
    "Record" lists them, oldest first, and the current deactivation, in local days, to view-only staff too, with
    nothing to edit."""
    from django.contrib.auth.models import Permission
    from django.utils import timezone

    from enrollment.models import PersonInactivePeriod

    settings.TIME_ZONE = "Europe/Berlin"
    utc = timezone.get_fixed_timezone(0)
    page = su_client.get(change_url(person)).content.decode()
    assert re.search(r"Inactive periods:</label>\s*<div class=\"readonly\">-</div>", page)   # none
    PersonInactivePeriod.objects.create(person=person, deactivated_at=datetime(2026, 3, 2, 23, 30, tzinfo=utc),
                                        reactivated_at=datetime(2026, 3, 17, 9, tzinfo=utc))
    PersonInactivePeriod.objects.create(person=person, reactivated_at=datetime(2026, 2, 1, 9, tzinfo=utc))
    Person.objects.filter(pk=person.pk).update(active=False, deactivated_at=datetime(2026, 4, 1, 8, tzinfo=utc))
    shown = '<div class="readonly">until 1 Feb 2026<br>3 Mar 2026 – 17 Mar 2026<br>since 1 Apr 2026</div>'
    page = su_client.get(change_url(person)).content.decode()
    assert shown in page and 'name="inactive_history"' not in page
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename="view_person"))
    client.force_login(viewer)
    assert shown in client.get(change_url(person)).content.decode()


def test_the_person_pages_of_our_own_say_the_admin_s_home_in_its_language(su_client, person):
    """The capture, erase and export pages wrote "Home" in English where every admin page says Django's own
    translation of it ("Start" in German)."""
    from django.utils import translation

    with translation.override("de"):
        for name in ("admin:enrollment_person_capture", "admin:enrollment_person_erase",
                     "admin:enrollment_person_export"):
            html = su_client.get(reverse(name, args=[person.pk])).content.decode()
            assert '">Start</a>' in html and ">Home</a>" not in html, name


def test_removing_a_photo_gallery_adaptation_kept_says_adaptation_stopped(enroller_client, person, make_photo):
    """Removing a face kept from a check-in stops gallery adaptation for the person, which only the audit
    log said, and Enrollers cannot read it: the admin said "The index is being rebuilt without them."
    alone (a helper's review). It says so now, from the photo's page and from the person's."""
    from enrollment.models import FacePhoto

    def said(response) -> list[str]:
        return [str(m) for m in response.context["messages"]]

    kept, uploaded = make_photo(person), make_photo(person)
    FacePhoto.objects.filter(pk=kept.pk).update(source=FacePhoto.Source.CHECKIN)
    stopped = f"Gallery adaptation is stopped for {person}: a photo it had kept was removed, so no other face " \
              "from their check-ins is kept."
    response = enroller_client.post(reverse("admin:enrollment_facephoto_delete", args=[kept.pk]), {"post": "yes"},
                                    follow=True)
    assert stopped in said(response), said(response)
    person.refresh_from_db()
    assert not person.gallery_adaptation
    # an uploaded photo removed: nothing said of adaptation (stopped already, or never its photo)
    Person.objects.filter(pk=person.pk).update(gallery_adaptation=True)
    response = enroller_client.post(reverse("admin:enrollment_facephoto_delete", args=[uploaded.pk]), {"post": "yes"},
                                    follow=True)
    assert not any("Gallery adaptation" in m for m in said(response)), said(response)


def test_a_kept_faces_page_links_its_check_in_for_those_who_may_read_check_ins(su_client, enroller, person,
                                                                               make_photo):
    """A face gallery adaptation kept names the check-in it came from (a wrong check-in's face is found
    from either side), linked; not for an Enroller, who may not read check-ins (nor a kept face's time)."""
    from django.utils import timezone

    from enrollment.models import FacePhoto
    from recognition.models import CheckIn

    checkin = CheckIn.objects.create(person=person, site="main", window="main:test", local_date=timezone.localdate())
    kept, gone = make_photo(person), make_photo(person)
    FacePhoto.objects.filter(pk=kept.pk).update(source=FacePhoto.Source.CHECKIN, kept_from_checkin=checkin.pk)
    FacePhoto.objects.filter(pk=gone.pk).update(source=FacePhoto.Source.CHECKIN, kept_from_checkin=checkin.pk + 1)

    def page(client, photo) -> str:
        return client.get(reverse("admin:enrollment_facephoto_change", args=[photo.pk])).content.decode()

    link = reverse("admin:recognition_checkin_change", args=[checkin.pk])
    assert f'<a href="{link}">check-in #{checkin.pk}</a>' in page(su_client, kept)
    assert f"check-in #{checkin.pk + 1} (deleted)" in page(su_client, gone)
    assert "kept from" in page(su_client, kept).lower()
    su_client.force_login(enroller)   # the same test client
    enroller_view = page(su_client, kept)
    assert "Kept until" in enroller_view and "kept from" not in enroller_view.lower(), enroller_view


def test_reactivating_at_once_refuses_an_unkeyed_twin_as_one_at_a_time_does(db):
    """A row from before staff ids were keyed (``staff_key`` NULL) whose id is another person's
    written otherwise: ``person_update`` refuses to reactivate it, and the bulk path let it through
    (a review). It now takes the one-person path, which keys the row or refuses it."""
    from django.core.exceptions import ValidationError

    services.person_create(actor=None, full_name="A", staff_id="QA-1")
    twin = services.person_create(actor=None, full_name="B", staff_id="x", active=False)
    fine = services.person_create(actor=None, full_name="C", staff_id="y", active=False)
    Person.objects.filter(pk__in=[twin.pk, fine.pk]).update(staff_key=None)
    Person.objects.filter(pk=twin.pk).update(staff_id="qa-1")
    with pytest.raises(ValidationError):
        services.person_update(person=Person.objects.get(pk=twin.pk), actor=None, active=True)
    done, refused = services.people_reactivate(people=[twin.pk, fine.pk], actor=None)
    assert done == [fine.pk] and list(refused) == [twin.pk] and "written otherwise" in refused[twin.pk]
    assert not Person.objects.get(pk=twin.pk).active
    assert Person.objects.filter(pk=fine.pk).values_list("active", "staff_key").get() == (True, "y")
