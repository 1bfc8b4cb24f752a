"""The public privacy page (/privacy/), the kiosk screen's notice line pointing to it, and the
``check --deploy`` warnings for a site that names no privacy contact (masknet.W003), or no data
controller or legal basis (masknet.W005)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from masknet_site.middleware import DEFAULT_CSP
from recognition import consumers, services
from recognition.checks import NOTICE_MAX_CHARS, kiosk_notice_length, privacy_contact, privacy_controller
from recognition.kiosk_page import page_build
from recognition.models import CheckIn
from recognition.views import KIOSK_CSP

pytestmark = pytest.mark.django_db


def page(**settings) -> str:
    """The privacy page's text (tags dropped, white space collapsed), as an anonymous visitor gets it."""
    with override_settings(**settings):
        response = Client().get("/privacy/")
    assert response.status_code == 200
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


def item(text: str, start: str) -> str:
    """The sentence of ``text`` from ``start`` to its next full stop."""
    return text[text.index(start):].split(".")[0]


def test_the_page_is_public_under_the_sites_policy_and_names_nobody(person, paired):
    services.checkin_record(person_id=person.pk, kiosk=paired[0], score=0.8, threshold=0.4, masked=True, frames=3,
                            index_version=1, at=timezone.now() - timedelta(minutes=5))
    response = Client().get(reverse("privacy"))
    assert response.status_code == 200 and reverse("privacy") == "/privacy/"
    # the site's default policy with this host's sockets, not the kiosk's own
    assert response["Content-Security-Policy"] == DEFAULT_CSP.replace(
        "connect-src 'self'", "connect-src 'self' wss://testserver ws://testserver")
    assert response["Content-Security-Policy"] != KIOSK_CSP
    html = response.content.decode()
    assert "Face recognition at this site" in html
    # no personal data: nobody enrolled, checked in or at a kiosk is named
    for personal in (person.full_name, person.staff_id, paired[0].name):
        assert personal not in html, personal
    assert Client().post("/privacy/").status_code == 405


@override_settings(MASKNET_CHECKIN_SNAPSHOTS=False, MASKNET_GALLERY_ADAPT=False,
                   MASKNET_RETENTION_DECISION_DAYS=365)
def test_the_defaults_keep_no_picture():
    text = page()
    assert "the pictures themselves are not stored." in text
    assert "No picture of the face is kept with a check-in now" in text
    assert "one more enrolment photo" not in text          # gallery adaptation is off: not mentioned
    assert "These notes are kept for 365 days" in text
    assert item(text, "A record of each recognition decision").endswith("kept for 365 days")
    assert "kept for good as the site’s audit trail" in text


def test_snapshots_and_their_retention_are_read_from_the_settings():
    on = page(MASKNET_CHECKIN_SNAPSHOTS=True, MASKNET_RETENTION_SNAPSHOT_DAYS=14)
    assert item(on, "With each check-in, a small picture of the face").endswith("kept for 14 days")
    assert "No picture of the face is kept" not in on
    assert "except the parts of a recognised person’s picture listed below" in on
    forever = page(MASKNET_CHECKIN_SNAPSHOTS=True, MASKNET_RETENTION_SNAPSHOT_DAYS=0)
    assert item(forever, "With each check-in").endswith("kept as long as the check-in")
    one = page(MASKNET_CHECKIN_SNAPSHOTS=True, MASKNET_RETENTION_SNAPSHOT_DAYS=1)
    assert item(one, "With each check-in").endswith("kept for 1 day")
    off = page(MASKNET_CHECKIN_SNAPSHOTS=False, MASKNET_RETENTION_SNAPSHOT_DAYS=14)
    assert "No picture of the face is kept with a check-in now" in off
    assert "With each check-in, a small picture" not in off


def test_snapshots_kept_before_they_were_switched_off_are_not_denied(person, paired):
    """Switching MASKNET_CHECKIN_SNAPSHOTS off stops new snapshots; those taken before stay until the
    retention purge (which applies MASKNET_RETENTION_SNAPSHOT_DAYS whatever the switch says), or for
    good with 0 days: the page said flatly that no picture is kept with a check-in."""
    with override_settings(MASKNET_CHECKIN_SNAPSHOTS=True):
        services.checkin_record(person_id=person.pk, kiosk=paired[0], score=0.8, threshold=0.4, masked=False,
                                frames=3, index_version=1, snapshot=b"\xff\xd8jpeg",
                                at=timezone.now() - timedelta(days=3))
    with override_settings(MASKNET_CHECKIN_SNAPSHOTS=False, MASKNET_RETENTION_SNAPSHOT_DAYS=14):
        assert services.retention_purge().snapshots == 0          # switched off: the old one stays its 14 days
    assert CheckIn.objects.filter(snapshot__isnull=False).count() == 1
    off = page(MASKNET_CHECKIN_SNAPSHOTS=False, MASKNET_RETENTION_SNAPSHOT_DAYS=14)
    assert item(off, "No picture of the face is kept with a check-in").endswith(
        "any kept with earlier check-ins, while this site kept them, are kept for 14 days")
    forever = page(MASKNET_CHECKIN_SNAPSHOTS=False, MASKNET_RETENTION_SNAPSHOT_DAYS=0)
    assert item(forever, "No picture of the face").endswith("are kept as long as the check-in")


def test_gallery_adaptation_is_told_and_so_are_faces_it_kept_once_it_is_off():
    on = page(MASKNET_GALLERY_ADAPT=True, MASKNET_GALLERY_ADAPT_MAX_PHOTOS=4, MASKNET_RETENTION_ADAPTED_DAYS=90)
    assert item(on, "For a person with fewer than 4 enrolment photos").endswith("kept for 90 days")
    assert "except the parts of a recognised person’s picture" in on
    kept = page(MASKNET_GALLERY_ADAPT=True, MASKNET_RETENTION_ADAPTED_DAYS=0)
    assert item(kept, "For a person with fewer than").endswith("kept as long as the other enrolment photos")
    # turned off, the faces kept while it was on stay until their purge: the page said nothing of them
    # (a helper's review), where it tells of snapshots kept earlier
    off = page(MASKNET_GALLERY_ADAPT=False, MASKNET_RETENTION_ADAPTED_DAYS=90)
    assert "one more enrolment photo" not in off
    assert item(off, "No face from a check-in is kept as an enrolment photo now").endswith(
        "any kept earlier, while this site kept them, are kept for 90 days")


def test_the_audit_records_retention_is_read_from_the_settings():
    text = page(MASKNET_RETENTION_DECISION_DAYS=30)
    assert "These notes are kept for 30 days" in text
    assert item(text, "A record of each recognition decision").endswith("kept for 30 days")
    forever = page(MASKNET_RETENTION_DECISION_DAYS=0)
    assert item(forever, "A record of each recognition decision").endswith("kept without a time limit")
    assert "These notes are kept without a time limit" in forever


def test_the_page_tells_every_fact_a_decision_record_keeps_of_someone_not_recognised(paired, person):
    """What the audit log writes for a face that is not checked in (the services the kiosk's consumer
    calls, with its "welcome stayed" detail) is what the page says it writes: the page said "only that
    a face was not recognised (which kiosk, when, and how close the nearest match was)", while the records
    also say whether a mask was worn, over how many frames, and, for a stranger close to the person
    whose welcome stands, that person's number; and faces turned away for their quality are recorded too."""
    from audit.models import AuditEvent

    kiosk = paired[0]
    services.checkin_reject_record(kiosk=kiosk, reason="unknown", frames=6, score=0.31, threshold=0.4, masked=True,
                                   detail=f"not shown: the welcome of person #{person.pk}, their nearest match, stayed")
    services.checkin_reject_record(kiosk=kiosk, reason="quality", frames=8, masked=False, detail="too_dark x8")
    unknown, quality = (AuditEvent.objects.get(action=a).summary
                        for a in (services.CHECKIN_UNKNOWN, services.CHECKIN_QUALITY))
    assert "masked" in unknown and "6 frames" in unknown and f"person #{person.pk}" in unknown
    assert "unmasked" in quality and "too_dark" in quality
    text = page(MASKNET_RETENTION_DECISION_DAYS=30)
    told = text[text.index("If you are not enrolled"):text.index("What is kept about enrolled people")]
    assert "notes only" not in told
    for fact in ("over how many pictures", "whether a mask was worn", "how close the nearest match was",
                 "that person’s number in the system", "A face the kiosk could not check (too dark",
                 "These notes are kept for 30 days"):
        assert fact in told, fact
    decisions = item(text, "A record of each recognition decision")
    assert "whether a mask was worn" in decisions and "over how many pictures" in decisions


def test_the_greeting_setting_says_which_name_the_screen_shows():
    assert "the screen shows their first name and the time" in page(MASKNET_KIOSK_GREETING="first")
    assert "the screen shows their name and the time" in page(MASKNET_KIOSK_GREETING="full")


def test_the_contact_is_the_setting_or_reception():
    text = page(MASKNET_PRIVACY_CONTACT="Data Protection Officer, dpo@example.org")
    assert item(text, "You may ask for a copy").endswith("or for it to be erased")
    assert "Ask Data Protection Officer, dpo@example.org" in text and "reception" not in text
    assert "Ask the reception or the administrator of this site" in page(MASKNET_PRIVACY_CONTACT="")
    # free text, escaped like any other
    with override_settings(MASKNET_PRIVACY_CONTACT="<b>HR desk</b>"):
        html = Client().get("/privacy/").content.decode()
    assert "&lt;b&gt;HR desk&lt;/b&gt;" in html and "<b>HR desk" not in html


CONTROLLER = "Example Logistics GmbH, Hafenstraße 1, 20457 Hamburg"
LEGAL_BASIS = "your explicit consent, given when you enrolled (GDPR art. 9(2)(a))"


def test_the_controller_and_legal_basis_are_the_operators_words():
    text = page(MASKNET_PRIVACY_CONTROLLER=CONTROLLER, MASKNET_PRIVACY_LEGAL_BASIS=LEGAL_BASIS,
                MASKNET_PRIVACY_CONTACT="dpo@example.org")
    assert f"This site is operated by {CONTROLLER} , which is responsible for what it does with faces" in text
    assert ("Faces are analysed here to record the attendance of enrolled people. The legal basis for it, "
            f"as the operator of this site states it: {LEGAL_BASIS}") in text
    assert "has not stated" not in text


def test_unset_the_page_says_the_operator_has_not_stated_them_and_whom_to_ask():
    """Only the operator knows who it is and on what basis it processes faces: the page invents neither."""
    text = page(MASKNET_PRIVACY_CONTROLLER="", MASKNET_PRIVACY_LEGAL_BASIS="", MASKNET_PRIVACY_CONTACT="the HR desk")
    assert item(text, "The operator of this site has not stated here which organisation").rstrip().endswith(
        "(the data controller): ask the HR desk")
    assert item(text, "The operator of this site has not stated here on what legal basis").rstrip().endswith(
        "or an obligation of employment law): ask the HR desk")
    assert "This site is operated by" not in text and "as the operator of this site states it" not in text
    nobody = page(MASKNET_PRIVACY_CONTROLLER="", MASKNET_PRIVACY_LEGAL_BASIS="", MASKNET_PRIVACY_CONTACT="")
    assert "(the data controller): ask the reception or the administrator of this site" in nobody
    # one set, the other not
    half = page(MASKNET_PRIVACY_CONTROLLER=CONTROLLER, MASKNET_PRIVACY_LEGAL_BASIS="  ")
    assert f"This site is operated by {CONTROLLER}" in half
    assert "has not stated here on what legal basis" in half and "has not stated here which organisation" not in half


def test_the_controller_and_legal_basis_are_escaped():
    with override_settings(MASKNET_PRIVACY_CONTROLLER="<script>x()</script> Acme & Co",
                           MASKNET_PRIVACY_LEGAL_BASIS='<a href="//evil">consent</a>'):
        html = Client().get("/privacy/").content.decode()
    assert "&lt;script&gt;x()&lt;/script&gt; Acme &amp; Co" in html and "<script>x()" not in html
    assert "&lt;a href=&quot;//evil&quot;&gt;consent&lt;/a&gt;" in html and '<a href="//evil"' not in html


def test_the_rights_section_names_every_right_and_how_it_is_exercised_here():
    text = page(MASKNET_PRIVACY_CONTACT="dpo@example.org")
    rights = text[text.index("Your rights"):]
    for right in ("You may ask for a copy of your data", "or for it to be erased", "Ask dpo@example.org",
                  "to have wrong data about you corrected", "to have its use restricted",
                  "the kiosks then stop recognising you", "to object to its use",
                  "where the legal basis is your consent, to withdraw it at any time",
                  "to complain to a data-protection supervisory authority"):
        assert right in rights, right
    assert "Ask dpo@example.org for these too" in " ".join(rights.split())
    assert item(rights, "This site’s staff can export your data as a file").endswith(
        "which no longer leads to you")


# ------------------------------------------------------------------------------------------- kiosk


def kiosk_screen(client: Client, token: str, **settings) -> str:
    client.cookies[consumers.KIOSK_COOKIE] = token
    with override_settings(**settings):
        response = client.get(reverse("kiosk"))
    assert response.status_code == 200
    assert response["Content-Security-Policy"].startswith(KIOSK_CSP.split("connect-src")[0])
    return response.content.decode()


def notice_line(html: str) -> str:
    return re.search(r'<p class="notice" id="privacy-notice">([^<]*)</p>', html).group(1)


def test_the_kiosk_screen_points_to_the_privacy_page(client, paired):
    html = kiosk_screen(client, paired[1], MASKNET_KIOSK_NOTICE="")
    assert notice_line(html) == "Face recognition records attendance here · Privacy: testserver/privacy/"
    # the host the kiosk reached the site by
    client.cookies[consumers.KIOSK_COOKIE] = paired[1]
    with override_settings(ALLOWED_HOSTS=["checkin.example.org"], MASKNET_KIOSK_NOTICE=""):
        other = client.get(reverse("kiosk"), HTTP_HOST="checkin.example.org").content.decode()
    assert notice_line(other).endswith("Privacy: checkin.example.org/privacy/")


def test_the_notice_can_be_worded_by_the_site(client, paired):
    html = kiosk_screen(client, paired[1], MASKNET_KIOSK_NOTICE="Gesichtserkennung · Datenschutz: {url} {braces}")
    assert notice_line(html) == "Gesichtserkennung · Datenschutz: testserver/privacy/ {braces}"
    plain = kiosk_screen(client, paired[1], MASKNET_KIOSK_NOTICE="See the sign by the door <b>")
    assert notice_line(plain) == "See the sign by the door &lt;b&gt;"


def test_another_notice_is_another_page_build(settings):
    """An open kiosk reloads when the server restarts with another notice (the page's build changes)."""
    settings.MASKNET_KIOSK_NOTICE = ""
    first = page_build.__wrapped__()
    settings.MASKNET_KIOSK_NOTICE = "Face check-in here · {url}"
    assert page_build.__wrapped__() != first


def test_another_time_zone_or_frame_rate_is_another_page_build(settings):
    """The page's config carries the site's time zone (its clock) and frame rate: an open kiosk kept
    its clock in the old zone after a restart that changed TIME_ZONE, above welcomes in the new one."""
    first = page_build.__wrapped__()
    settings.TIME_ZONE = "Asia/Kathmandu" if settings.TIME_ZONE != "Asia/Kathmandu" else "UTC"
    zoned = page_build.__wrapped__()
    settings.MASKNET_KIOSK_MAX_FPS = settings.MASKNET_KIOSK_MAX_FPS + 1
    assert len({first, zoned, page_build.__wrapped__()}) == 3


def test_another_site_language_is_another_page_build(settings):
    """A kiosk with a language of its own, the site's default until a restart changed that default:
    its notice's privacy address gains ``?lang=`` (the bare address now speaks another language),
    so the open page must reload though its own language did not change. Found by a helper's review."""
    settings.MASKNET_KIOSK_LANGUAGE = "en"
    first = page_build.__wrapped__()
    settings.MASKNET_KIOSK_LANGUAGE = "pt"
    assert page_build.__wrapped__() != first


def test_another_page_config_or_socket_protocol_is_another_page_build(monkeypatch):
    """A release changing only the page's frame size, JPEG quality or addresses, or the socket's
    messages, left open kiosks on the old ones: they are in the build. Found by a helper's review."""
    from recognition import kiosk_page

    first = page_build.__wrapped__()
    monkeypatch.setitem(kiosk_page.PAGE_CONFIG, "jpeg_quality", 0.7)
    sized = page_build.__wrapped__()
    monkeypatch.setattr(kiosk_page, "PROTOCOL", kiosk_page.PROTOCOL + 1)
    assert len({first, sized, page_build.__wrapped__()}) == 3
    assert "recognition/templatetags/kiosk_text.py" in kiosk_page.PAGE_FILES


def test_a_release_rewording_the_default_notice_is_another_page_build(settings, tmp_path):
    """Where MASKNET_KIOSK_NOTICE is unset, the line is the release's own wording (its catalog's
    ``notice``, recognition/kiosk_text/<code>.json, in each language): a release that rewords it alone
    must still reload open kiosks, which kept the old line for weeks while only the setting's value
    went into the build. The catalogs are files of the page's build."""
    import shutil
    from pathlib import Path

    from recognition.kiosk_page import PAGE_FILES

    repo = Path(settings.BASE_DIR)
    settings.MASKNET_KIOSK_NOTICE = ""
    settings.BASE_DIR = tmp_path
    for name in PAGE_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(repo / name, tmp_path / name)
    first = page_build.__wrapped__()
    german = tmp_path / "recognition/kiosk_text/de.json"
    german.write_text(german.read_text().replace("Datenschutz: {url}", "Datenschutzhinweise: {url}"))
    assert page_build.__wrapped__() != first


# ------------------------------------------------------------------------------------------- check


def test_check_deploy_warns_without_a_contact(capsys):
    with override_settings(MASKNET_PRIVACY_CONTACT=""):
        [warning] = privacy_contact()
        assert warning.id == "masknet.W003" and "MASKNET_PRIVACY_CONTACT" in warning.msg
        call_command("check")                       # not a deploy check: a development site is not told
        assert "masknet.W003" not in capsys.readouterr().err
        call_command("check", "--deploy")
        assert "masknet.W003" in capsys.readouterr().err
    with override_settings(MASKNET_PRIVACY_CONTACT="hr@example.org"):
        assert privacy_contact() == []
    with override_settings(MASKNET_PRIVACY_CONTACT="   "):
        assert [w.id for w in privacy_contact()] == ["masknet.W003"]


def test_check_deploy_warns_without_a_controller_or_legal_basis(capsys):
    both = {"MASKNET_PRIVACY_CONTROLLER": CONTROLLER, "MASKNET_PRIVACY_LEGAL_BASIS": LEGAL_BASIS}
    with override_settings(**both):
        assert privacy_controller() == []
    with override_settings(MASKNET_PRIVACY_CONTROLLER="", MASKNET_PRIVACY_LEGAL_BASIS=""):
        [warning] = privacy_controller()             # one warning naming both
        assert warning.id == "masknet.W005"
        assert "MASKNET_PRIVACY_CONTROLLER and MASKNET_PRIVACY_LEGAL_BASIS are not set" in warning.msg
        call_command("check")                       # not a deploy check: a development site is not told
        assert "masknet.W005" not in capsys.readouterr().err
        call_command("check", "--deploy")
        assert "masknet.W005" in capsys.readouterr().err
    for name in both:
        with override_settings(**{**both, name: "  "}):
            [warning] = privacy_controller()
            assert warning.id == "masknet.W005" and f"{name} is not set" in warning.msg
            assert all(other not in warning.msg for other in set(both) - {name})    # only what is missing
    # the contact stays W003's alone
    with override_settings(MASKNET_PRIVACY_CONTACT="", **both):
        assert privacy_controller() == [] and [w.id for w in privacy_contact()] == ["masknet.W003"]


def test_check_warns_of_a_notice_longer_than_the_kiosk_is_laid_out_for(capsys):
    """A notice line is never cut (it could lose the privacy page's address): one longer than the
    layout test's runs down over the camera's picture, so ``check`` (every start) says so."""
    from tests.recognition import test_kiosk_layout

    assert kiosk_notice_length() == []                                   # the default wording
    # what passes is laid out: the layout test's NOTICE with its server's address (127.0.0.1, a port of
    # 4 digits at least) and a kiosk's ?lang=de is at least the longest notice the check lets pass
    laid_out = test_kiosk_layout.NOTICE.replace("{url}", "127.0.0.1:1024/privacy/?lang=de")
    assert len(laid_out) >= NOTICE_MAX_CHARS
    long = "Face recognition records attendance at this entrance and at the loading bay · " * 2 + "{url}"
    with override_settings(MASKNET_KIOSK_NOTICE=long):
        [warning] = kiosk_notice_length()
        assert warning.id == "masknet.W004" and str(NOTICE_MAX_CHARS) in warning.msg
        call_command("check")
        assert "masknet.W004" in capsys.readouterr().err


def test_the_notice_check_counts_the_longest_address_a_kiosk_shows(monkeypatch):
    """``{url}`` was counted as 30 characters, the bare address's, where a kiosk in another language
    than the site's shows it with ``?lang=xx`` (38): a notice 8 characters over what the kiosk's
    layout is checked with passed. Counted now as the longest address, a long host name included."""
    from recognition import checks
    from recognition.checks import NOTICE_URL_CHARS, notice_url_chars

    with override_settings(ALLOWED_HOSTS=["localhost", "127.0.0.1"], MASKNET_KIOSK_LANGUAGE="en"):
        assert notice_url_chars() == NOTICE_URL_CHARS + len("?lang=de") == 38
        at_most = "x" * (NOTICE_MAX_CHARS - 38 - 1) + " {url}"
        with override_settings(MASKNET_KIOSK_NOTICE=at_most):
            assert kiosk_notice_length() == []
        over = "x" * (NOTICE_MAX_CHARS - 38) + " {url}"    # passed while {url} was counted as 30
        with override_settings(MASKNET_KIOSK_NOTICE=over):
            [warning] = kiosk_notice_length()
            assert warning.id == "masknet.W004" and "{url} counted as 38" in warning.msg, warning.msg
            # one language only: no kiosk adds ?lang=, the bare address is the longest
            monkeypatch.setattr(checks, "languages", lambda: {"en": "English"})
            assert notice_url_chars() == NOTICE_URL_CHARS and kiosk_notice_length() == []
    host = "attendance.headquarters.example.org"        # 35: longer than the 21 counted for any host
    with override_settings(ALLOWED_HOSTS=["localhost", host, "*"], MASKNET_KIOSK_LANGUAGE="en"):
        assert notice_url_chars() == len(f"{host}/privacy/")


# ------------------------------------------------------------------------------------------- languages


def page_in(lang: str | None, **settings) -> tuple[str, str]:
    """The privacy page asked in ``lang`` (``?lang=``; None: no query): its ``<html lang>`` and its text."""
    with override_settings(**settings):
        response = Client().get("/privacy/", {"lang": lang} if lang is not None else {})
    assert response.status_code == 200
    html = response.content.decode()
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    return re.search(r'<html lang="([^"]*)">', html).group(1), text


def test_the_page_speaks_portuguese_with_the_sites_settings():
    """GDPR art. 12: the information in a form the people filmed understand, the kiosk's languages."""
    lang, text = page_in("pt", MASKNET_CHECKIN_SNAPSHOTS=True, MASKNET_RETENTION_SNAPSHOT_DAYS=14,
                         MASKNET_GALLERY_ADAPT=True, MASKNET_GALLERY_ADAPT_MAX_PHOTOS=4,
                         MASKNET_RETENTION_ADAPTED_DAYS=1, MASKNET_RETENTION_DECISION_DAYS=0,
                         MASKNET_KIOSK_GREETING="first", MASKNET_PRIVACY_CONTACT="dpo@example.org",
                         MASKNET_PRIVACY_CONTROLLER=CONTROLLER, MASKNET_PRIVACY_LEGAL_BASIS="")
    assert lang == "pt"
    assert "Reconhecimento facial neste local" in text and "Face recognition at this site" not in text
    assert "as imagens em si não são guardadas (exceto as partes" in text
    assert "a tela mostra o primeiro nome da pessoa e a hora" in text
    assert item(text, "Com cada entrada, uma pequena imagem do rosto").endswith("guardada durante 14 dias")
    assert item(text, "Para uma pessoa com menos de 4 fotos de cadastro").endswith("guardada durante 1 dia")
    assert "Estas anotações são guardadas sem prazo" in text
    assert f"Este site é operado por {CONTROLLER} , responsável" in text
    assert "não indicou aqui com que base legal o faz" in text and "contate dpo@example.org" in text
    # whom to ask, unset: the language's own words for reception and the administrator
    _, nobody = page_in("pt", MASKNET_PRIVACY_CONTACT="", MASKNET_RETENTION_DECISION_DAYS=30)
    assert "Contate a recepção ou o administrador deste site" in nobody and "reception" not in nobody
    assert "Estas anotações são guardadas durante 30 dias" in nobody


@pytest.mark.parametrize("code", ["de", "es", "fr"])
def test_each_language_fills_in_the_settings(code):
    lang, text = page_in(code, MASKNET_RETENTION_DECISION_DAYS=365, MASKNET_PRIVACY_CONTACT="hr@example.org")
    english = page_in("en", MASKNET_RETENTION_DECISION_DAYS=365, MASKNET_PRIVACY_CONTACT="hr@example.org")[1]
    assert lang == code and "365" in text and text.count("hr@example.org") == english.count("hr@example.org") == 4
    assert "What is kept about enrolled people" not in text and "{" not in text


def test_the_page_links_to_each_language_at_its_top():
    with override_settings(MASKNET_KIOSK_LANGUAGE="en"):
        html = Client().get("/privacy/?lang=fr").content.decode()
    top = html[html.index('<nav class="languages"'):html.index("</nav>")]
    assert 'aria-label="Langue"' in top
    for code, name in (("en", "English"), ("de", "Deutsch"), ("es", "Español"), ("pt", "Português")):
        assert f'<a href="?lang={code}" hreflang="{code}" lang="{code}">{name}</a>' in top
    assert '<strong lang="fr" aria-current="page">Français</strong>' in top
    assert html.index("</nav>") < html.index("<h1>")


def test_an_unknown_language_falls_back_to_the_sites_default():
    """A code there is no catalog of (or a malformed one) is no error: the site's MASKNET_KIOSK_LANGUAGE."""
    for asked in ("xx", "PT", "../en", "", "pt-BR", "<script>"):
        assert page_in(asked, MASKNET_KIOSK_LANGUAGE="de")[0] == "de", asked
        assert page_in(asked)[0] == "en", asked
    lang, text = page_in(None, MASKNET_KIOSK_LANGUAGE="es")
    assert lang == "es" and "Reconocimiento facial en este centro" in text


def test_the_page_stays_cacheable_by_its_query_string(client):
    """Public, no data: cacheable as before (docs/security.md); the language is in the query string,
    which caches key on, so no Vary on a header such as Accept-Language."""
    response = Client().get("/privacy/?lang=pt")
    assert "Cache-Control" not in response and "Accept-Language" not in response.get("Vary", "")


def test_the_kiosks_notice_carries_its_language(client, paired):
    """The kiosk's notice line leads to the privacy page in the kiosk's language: with ?lang= when the
    kiosk speaks another than the site's default, which the bare address speaks."""
    kiosk = paired[0]
    kiosk.language = "pt"
    kiosk.save(update_fields=["language"])
    line = notice_line(kiosk_screen(client, paired[1], MASKNET_KIOSK_NOTICE="", MASKNET_KIOSK_LANGUAGE="en"))
    assert line == ("Aqui, as presenças são marcadas por reconhecimento facial · "
                    "Privacidade: testserver/privacy/?lang=pt")
    assert page_in("pt")[0] == "pt"
    # the site's wording, in every language, carries the kiosk's too
    line = notice_line(kiosk_screen(client, paired[1], MASKNET_KIOSK_NOTICE="Privacy: {url}"))
    assert line == "Privacy: testserver/privacy/?lang=pt"
    # a kiosk in the site's language: the bare address, which speaks it
    line = notice_line(kiosk_screen(client, paired[1], MASKNET_KIOSK_NOTICE="", MASKNET_KIOSK_LANGUAGE="pt"))
    assert line.endswith("Privacidade: testserver/privacy/")
