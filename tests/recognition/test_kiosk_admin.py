"""The kiosk admin's pairing rules: who is shown a link, inactive kiosks, and the change lists'
CSV exports refusing filters they cannot read."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.urls import reverse

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


def test_the_pairing_page_says_when_a_short_link_expires(client, superuser, settings):
    settings.MASKNET_KIOSK_PAIRING_TTL_S = 1800
    client.force_login(superuser)
    kiosk, _ = services.kiosk_create(actor=None, name="K")
    page = client.post(reverse("admin:recognition_kiosk_pairing", args=[kiosk.pk]))
    assert b"expires in 30 minutes" in page.content


@pytest.mark.parametrize("export", ["admin:recognition_checkin_export", "admin:audit_auditevent_export"])
def test_csv_exports_refuse_unreadable_filters_with_a_400(client, superuser, export):
    client.force_login(superuser)
    assert client.get(reverse(export)).status_code == 200
    for query in ({"at__gte": "notadate"}, {"at__year": "abc"}):
        assert client.get(reverse(export), query).status_code == 400, query
