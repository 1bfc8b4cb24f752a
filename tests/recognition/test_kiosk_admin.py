"""The kiosk admin's pairing rules: who is shown a link, inactive kiosks, and the change lists'
CSV exports refusing filters they cannot read."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.urls import reverse

from audit.models import AuditEvent
from recognition import services
from recognition.models import Kiosk

pytestmark = pytest.mark.django_db(transaction=True)


def staff_with(*codenames: str) -> User:
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def test_adding_a_kiosk_without_the_pair_permission_shows_no_link(client):
    client.force_login(staff_with("add_kiosk", "view_kiosk", "change_kiosk"))
    response = client.post(reverse("admin:recognition_kiosk_add"),
                           {"name": "Lobby", "location": "", "site": "main", "active": "on"})
    kiosk = Kiosk.objects.get()
    assert response.status_code == 302 and not kiosk.pairing_hash       # no link nobody will see
    assert response["Location"] == reverse("admin:recognition_kiosk_change", args=[kiosk.pk])
    assert client.get(reverse("admin:recognition_kiosk_pairing", args=[kiosk.pk])).status_code == 403


def test_the_pairing_and_revoke_pages_tell_no_one_without_the_permission_which_kiosks_exist(client, superuser):
    """Staff without ``pair_kiosk`` got a 404 from the pairing page for an unknown kiosk id and a 403
    for a known one, so they could tell which ids exist: a 403 for either now, as the revoke page
    does; those with the permission still get the 404."""
    kiosk, _ = services.kiosk_create(actor=None, name="K", with_link=False)
    unknown = kiosk.pk + 1000
    client.force_login(staff_with("view_kiosk", "change_kiosk"))
    for name in ("admin:recognition_kiosk_pairing", "admin:recognition_kiosk_revoke"):
        for method in (client.get, client.post):
            assert [method(reverse(name, args=[pk])).status_code for pk in (kiosk.pk, unknown)] == [403, 403], name
    client.force_login(superuser)
    assert client.get(reverse("admin:recognition_kiosk_pairing", args=[unknown])).status_code == 404
    assert not Kiosk.objects.get().pairing_hash   # no link was issued to them


def test_an_inactive_kiosk_gets_no_pairing_link(client, superuser):
    client.force_login(superuser)
    response = client.post(reverse("admin:recognition_kiosk_add"), {"name": "Spare", "location": "", "site": "main"})
    kiosk = Kiosk.objects.get()
    assert not kiosk.active and not kiosk.pairing_hash
    assert response["Location"] == reverse("admin:recognition_kiosk_change", args=[kiosk.pk])
    page = client.post(reverse("admin:recognition_kiosk_pairing", args=[kiosk.pk]))
    assert page.status_code == 200 and page.context["url"] is None and b"inactive" in page.content
    assert not Kiosk.objects.get().pairing_hash
    with pytest.raises(CommandError, match="inactive"):
        call_command("create_kiosk", "Spare", "--new-link")


def test_reloading_the_page_of_a_new_link_does_not_void_it(client, superuser):
    """Reloading the page "Make another link" answered sends its form again: a second link voided the
    one just shown, unsaid (its audit record read as a deliberate new link). Found by a helper's review."""
    client.force_login(superuser)
    kiosk, _first = services.kiosk_create(actor=superuser, name="Door")
    url = reverse("admin:recognition_kiosk_pairing", args=[kiosk.pk])
    drawn = client.get(url).context["drawn"]   # the page as drawn, with the link made at creation
    made = client.post(url, {"drawn": drawn})
    shown = made.context["url"]
    assert shown and made.context["drawn"] != drawn
    again = client.post(url, {"drawn": drawn}, follow=True)   # the reload: the same form again
    assert again.context["url"] is None and "was made since this page was drawn" in again.content.decode()
    assert services.kiosk_pair(code=shown.rstrip("/").rsplit("/", 1)[1]) is not None   # still works
    # the form of the page as it is now makes another
    assert client.post(url, {"drawn": client.get(url).context["drawn"]}).context["url"]


def test_the_pairing_pages_promise_no_link_or_device_a_kiosk_does_not_have(client, superuser):
    """An inactive kiosk's page offered "New pairing link", which led to a page promising "a new
    one-time link" and that "the device paired now keeps working" (an inactive kiosk has no device)
    with no way on but the breadcrumbs; an active kiosk without a device was told the same."""
    client.force_login(superuser)
    kiosk, _ = services.kiosk_create(actor=None, name="Spare", with_link=False)
    pairing = reverse("admin:recognition_kiosk_pairing", args=[kiosk.pk])
    change = reverse("admin:recognition_kiosk_change", args=[kiosk.pk])
    page = client.get(pairing).content.decode()
    assert "A new one-time link pairs" in page and "device paired now keeps working" not in page   # none paired
    assert f'href="{pairing}"' in client.get(change).content.decode()
    services.kiosk_update(kiosk=kiosk, actor=None, active=False)
    assert f'href="{pairing}"' not in client.get(change).content.decode()
    page = client.get(pairing).content.decode()
    assert "inactive" in page and "A new one-time link" not in page and "device paired now" not in page
    assert f'href="{change}"' in page.split('id="content-main"', 1)[1]   # the way back, in the page itself
    kiosk = services.kiosk_update(kiosk=kiosk, actor=None, active=True)
    assert services.kiosk_pair(code=services.kiosk_pairing_issue(kiosk=kiosk, actor=None))
    assert "device paired now keeps working until the new link is used" in client.get(pairing).content.decode()


def test_the_pairing_page_says_when_a_short_link_expires(client, superuser, settings):
    settings.MASKNET_KIOSK_PAIRING_TTL_S = 1800
    client.force_login(superuser)
    kiosk, _ = services.kiosk_create(actor=None, name="K")
    page = client.post(reverse("admin:recognition_kiosk_pairing", args=[kiosk.pk]))
    assert b"expires in 30 minutes" in page.content


def test_the_revoke_action_counts_only_kiosks_that_had_a_device(client, superuser, paired):
    """The list action on a kiosk never paired neither claims a revocation nor audits one."""
    kiosk, token = paired
    spare, _ = services.kiosk_create(actor=None, name="Spare", with_link=False)
    client.force_login(superuser)
    response = client.post(reverse("admin:recognition_kiosk_changelist"),
                           {"action": "revoke_selected", "_selected_action": [kiosk.pk, spare.pk]}, follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        "Revoked 1 kiosk device.",
        "Not paired, no device to revoke: “Spare” (their unused pairing links, if any, no longer work)."]
    assert Kiosk.objects.for_device_token(token) is None
    revocations = AuditEvent.objects.filter(object_type="recognition.kiosk", action="deactivate")
    assert [e.object_id for e in revocations.all()] == [str(kiosk.pk)]
    only_spare = client.post(reverse("admin:recognition_kiosk_changelist"),
                             {"action": "revoke_selected", "_selected_action": [spare.pk]}, follow=True)
    assert [str(m) for m in only_spare.context["messages"]] == [
        "Not paired, no device to revoke: “Spare” (their unused pairing links, if any, no longer work)."]
    page = client.post(reverse("admin:recognition_kiosk_revoke", args=[spare.pk]), follow=True)
    assert [str(m) for m in page.context["messages"]] == [
        "“Spare” was not paired: no device to revoke (an unused pairing link, if any, no longer works)."]
    assert revocations.count() == 1


def test_the_revoke_action_counts_several_devices_in_the_plural(client, superuser, paired):
    """"Revoked 2 kiosk device(s).": the count chooses the noun (enrollment.services.counted, as the people's)."""
    from .conftest import make_paired_kiosk

    second = make_paired_kiosk("Back door")[0]
    client.force_login(superuser)
    response = client.post(reverse("admin:recognition_kiosk_changelist"),
                           {"action": "revoke_selected", "_selected_action": [paired[0].pk, second.pk]}, follow=True)
    assert [str(m) for m in response.context["messages"]] == ["Revoked 2 kiosk devices."]


def test_without_the_pair_permission_active_is_read_only_on_an_existing_kiosk(client, paired):
    """Unticking *active* unpairs the device, a revocation: it needs ``pair_kiosk`` as revoking does.
    Other fields stay editable, and the add form still sets *active*."""
    kiosk, token = paired
    client.force_login(staff_with("add_kiosk", "view_kiosk", "change_kiosk"))
    change = reverse("admin:recognition_kiosk_change", args=[kiosk.pk])
    assert "active" not in client.get(change).context["adminform"].form.fields
    # a form posted without "active" (as an unticked box is) changes the rest, not active
    response = client.post(change, {"name": "Front door", "location": "Side entrance", "site": "main"})
    assert response.status_code == 302
    kiosk.refresh_from_db()
    assert kiosk.active and kiosk.location == "Side entrance" and Kiosk.objects.for_device_token(token) == kiosk
    add = reverse("admin:recognition_kiosk_add")
    assert "active" in client.get(add).context["adminform"].form.fields
    spare = client.post(add, {"name": "Spare", "location": "", "site": "main"}, follow=True)
    # they cannot activate it: told who can, not "activate it, then create a pairing link" (a helper's review)
    assert "someone with the “pair kiosk” permission activates it" in spare.content.decode()
    client.post(add, {"name": "Lobby", "location": "", "site": "main", "active": "on"})
    assert dict(Kiosk.objects.filter(name__in=["Spare", "Lobby"]).values_list("name", "active")) == {
        "Spare": False, "Lobby": True}


def test_with_the_pair_permission_unticking_active_unpairs(client, paired):
    kiosk, token = paired
    client.force_login(staff_with("view_kiosk", "change_kiosk", "pair_kiosk"))
    change = reverse("admin:recognition_kiosk_change", args=[kiosk.pk])
    assert "active" in client.get(change).context["adminform"].form.fields
    saved = client.post(change, {"name": "Front door", "location": "Main entrance", "site": "main"}, follow=True)
    kiosk.refresh_from_db()
    assert not kiosk.active and Kiosk.objects.for_device_token(token) is None
    # said on the page: "changed successfully" alone left the device unpaired unannounced
    said = [str(m) for m in saved.context["messages"]]
    assert any("device was unpaired" in m and "new pairing link" in m for m in said), said
    # recorded as the deactivation and revocation it is (it was a mere "updated kiosk: active")
    event = AuditEvent.objects.filter(object_type="recognition.kiosk", object_id=str(kiosk.pk)).latest("id")
    assert event.action == "deactivate" and "revoked its device" in event.summary, event.summary
    again = client.post(change, {"name": "Front door", "location": "Main entrance", "site": "main", "active": "on"},
                        follow=True)
    assert not any("unpaired" in str(m) for m in again.context["messages"])
    unpaired = client.post(change, {"name": "Front door", "location": "Main entrance", "site": "main"}, follow=True)
    assert not any("unpaired" in str(m) for m in unpaired.context["messages"])   # no device left to unpair
    back = AuditEvent.objects.filter(object_type="recognition.kiosk", object_id=str(kiosk.pk),
                                     summary__endswith="reactivated").latest("id")
    assert back.action == "update" and back.summary.endswith("reactivated")


@pytest.mark.parametrize("export", ["admin:recognition_checkin_export", "admin:audit_auditevent_export"])
def test_csv_exports_refuse_unreadable_filters_with_a_400(client, superuser, export):
    client.force_login(superuser)
    assert client.get(reverse(export)).status_code == 200
    # the last year and month Python can name: the drill-down asks for the one after (a 500 before)
    unreadable = ({"at__gte": "notadate"}, {"at__year": "abc"}, {"at__year": "9999"},
                  {"at__year": "9999", "at__month": "12"})
    for query in unreadable:
        assert client.get(reverse(export), query).status_code == 400, query
    changelist = reverse(export.replace("_export", "_changelist"))
    for query in unreadable[2:]:
        page = client.get(changelist, query)
        assert page.status_code == 302 and "e=1" in page["Location"], query   # the list's own "cannot filter"


def test_the_admin_reads_as_masknet_s_and_says_which_kiosks_are_online(client, superuser, person):
    """The header names the product (it said "Django administration"); the kiosk list says which
    kiosks were heard from lately; a check-in's mask is a word, not a red cross, and its scores are
    rounded; the date filters read "By time", not "By at"."""
    from datetime import timedelta

    from django.utils import timezone

    from recognition.models import CheckIn

    client.force_login(superuser)
    online, _ = services.kiosk_create(actor=None, name="Lobby", location="", site="main")
    asleep, _ = services.kiosk_create(actor=None, name="Side door", location="", site="main")
    services.kiosk_create(actor=None, name="Spare", location="", site="main")
    services.kiosk_pair(code=services.kiosk_pairing_issue(kiosk=online, actor=None))
    services.kiosk_pair(code=services.kiosk_pairing_issue(kiosk=asleep, actor=None))
    Kiosk.objects.filter(pk=online.pk).update(last_seen_at=timezone.now())
    Kiosk.objects.filter(pk=asleep.pk).update(last_seen_at=timezone.now() - timedelta(hours=3))
    page = client.get(reverse("admin:recognition_kiosk_changelist")).content.decode()
    assert "MaskNet administration" in page and "Django administration" not in page
    assert page.count(">online<") == 1 and ">never<" in page
    outcome = services.checkin_record(person_id=person.pk, kiosk=Kiosk.objects.get(pk=online.pk),
                                      score=0.953824982047081, threshold=0.425, masked=False, frames=3,
                                      index_version=None)
    detail = client.get(reverse("admin:recognition_checkin_change", args=[outcome.checkin.pk])).content.decode()
    assert "0.954" in detail and "0.953824" not in detail and "no mask" in detail
    CheckIn.objects.update(threshold=None)   # as the demo's check-ins: none recorded
    assert client.get(reverse("admin:recognition_checkin_change", args=[outcome.checkin.pk])).status_code == 200
    listing = client.get(reverse("admin:recognition_checkin_changelist")).content.decode()
    assert "By time" in listing and "By at" not in listing
    assert CheckIn.objects.count() == 1


def test_the_pairing_page_shows_the_link_as_a_qr_code_that_reads_back(client, superuser):
    """The QR code on the pairing page (drawn, with OpenCV's reader standing in for a tablet's
    camera) is the one-time link itself."""
    import re

    import cv2
    import numpy as np

    client.force_login(superuser)
    client.post(reverse("admin:recognition_kiosk_add"), {"name": "Lobby", "location": "", "site": "main",
                                                          "active": "on"})
    page = client.get(reverse("admin:recognition_kiosk_pairing", args=[Kiosk.objects.get().pk]), follow=True)
    html = page.content.decode()
    link = re.search(r'<code id="pairing-url"[^>]*>([^<]+)</code>', html).group(1)
    assert not re.search(r"\{[#%]", html)   # no template comment or tag left as text (a multi-line {# #})
    figure = re.search(r'<p id="pairing-qr"([^>]*)>(.*?)</p>', html, re.S)
    svg = figure.group(2)
    assert "<script" not in svg and link not in svg   # drawn, not written
    # one named image for screen readers: the paragraph; the SVG inside it was a second, unnamed one
    assert 'role="img"' in figure.group(1) and 'aria-label="QR code of the pairing link"' in figure.group(1)
    assert re.match(r'<svg [^>]*aria-hidden="true"', svg)
    # the SVG's modules (``Mx,yHx2Vy2Hxz`` squares) on white, 10 px each
    view = [float(v) for v in re.search(r'viewBox="([^"]+)"', svg).group(1).split()]
    squares = re.findall(r"M([\d.]+),([\d.]+)H([\d.]+)V([\d.]+)", svg)
    unit = min(float(x2) - float(x) for x, _, x2, _ in squares)
    size = round(view[2] / unit) * 10
    image = np.full((size, size), 255, np.uint8)
    for x, y, x2, y2 in squares:
        c = [round(float(v) / unit) * 10 for v in (x, y, x2, y2)]
        image[c[1]:c[3], c[0]:c[2]] = 0
    # OpenCV's classic reader misses about 2% of valid codes (18 of 1,000 random pairing links,
    # quiet zone and all, which its ArUco-based reader all read): the code reads back if either does
    decoded = [reader.detectAndDecode(image)[0] for reader in (cv2.QRCodeDetector(), cv2.QRCodeDetectorAruco())]
    assert link in decoded and "/kiosk/pair/" in link


def test_a_pairing_link_on_a_port_other_than_443_carries_the_port_the_proxy_forwards(client, superuser):
    """docs/deployment.md's nginx sample forwards ``Host $host``, which drops a port other than 443:
    the admin's link (and QR code), made from the Host asked for, opened port 443 on the kiosk. The
    deployment guide says to forward ``$host:$server_port`` on such a port; with it the link is right."""
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[2] / "docs" / "deployment.md").read_text()
    assert "proxy_set_header Host $host:$server_port;" in guide
    client.force_login(superuser)
    kiosk, _ = services.kiosk_create(actor=None, name="K", with_link=False)
    page = client.post(reverse("admin:recognition_kiosk_pairing", args=[kiosk.pk]),
                       HTTP_HOST="testserver:8443", HTTP_X_FORWARDED_PROTO="https", secure=True)
    assert page.context["url"].startswith("https://testserver:8443/kiosk/pair/")


def test_a_kiosk_s_language_is_chosen_from_a_list_blank_being_the_site_s(client, superuser, settings):
    """The admin offers the kiosk screen's languages as a choice list (the catalogs of
    recognition/kiosk_text), blank first and named after the site's MASKNET_KIOSK_LANGUAGE; a code
    without a catalog is refused, not stored to show English without a word; a change is audited."""
    from recognition.kiosk_text import languages

    client.force_login(superuser)
    page = client.get(reverse("admin:recognition_kiosk_add"))
    field = page.context["adminform"].form.fields["language"]
    assert [code for code, _label in field.choices] == ["", *languages()]
    assert "the site's default: English" in dict(field.choices)[""]
    assert '<select name="language"' in page.content.decode()
    client.post(reverse("admin:recognition_kiosk_add"), {"name": "Lobby", "site": "main", "language": "en"})
    kiosk = Kiosk.objects.get()
    assert kiosk.language == "en" and kiosk.screen_language == "en"
    change = reverse("admin:recognition_kiosk_change", args=[kiosk.pk])
    refused = client.post(change, {"name": "Lobby", "site": "main", "language": "klingon"})
    assert refused.status_code == 200 and "language" in refused.context["adminform"].form.errors
    assert Kiosk.objects.get().language == "en"
    assert client.post(change, {"name": "Lobby", "site": "main", "language": ""}).status_code == 302
    kiosk.refresh_from_db()
    assert kiosk.language == "" and kiosk.screen_language == settings.MASKNET_KIOSK_LANGUAGE
    assert AuditEvent.objects.filter(summary__contains="language").exists()
