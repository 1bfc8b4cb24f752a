"""``python manage.py create_kiosk NAME``: create a kiosk and print its one-time pairing link."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from audit.management.actor import add_actor_argument, command_actor
from recognition import services
from recognition.kiosk_text import languages
from recognition.models import Kiosk

from ._common import checked_base_url

LOCAL_URL = "http://127.0.0.1:8000"   # make run's address
DEFAULT_SITE = "main"


class Command(BaseCommand):
    help = ("Create a kiosk and print its one-time pairing URL (open it once on the kiosk device). "
            "With --new-link, print a new pairing URL for an existing kiosk.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="kiosk name, e.g. 'Front door'")
        # (None when not given: with --new-link they are refused, not silently ignored)
        parser.add_argument("--location", default=None, help="where it stands, e.g. 'Main entrance, building A'")
        parser.add_argument("--site", default=None,
                            help=f"site (kiosks of a site share the check-in cooldown; default: {DEFAULT_SITE})")
        parser.add_argument("--language", default=None, metavar="CODE",
                            help=f"the language of its screen: one of {', '.join(languages())} (default: the "
                                 "site's MASKNET_KIOSK_LANGUAGE, which it then follows)")
        parser.add_argument("--base-url", default=None,
                            help="how the kiosk device reaches this site (default: the first of "
                                 f"DJANGO_CSRF_TRUSTED_ORIGINS, the site's public address, else {LOCAL_URL}; "
                                 "the production settings refuse to guess)")
        parser.add_argument("--new-link", action="store_true",
                            help="the kiosk exists: issue a new pairing link (the old unused one stops working)")
        add_actor_argument(parser, "the kiosk and its pairing link")

    def handle(self, *args, name: str, base_url: str | None, new_link: bool, location: str | None = None,
               site: str | None = None, actor: str | None = None, language: str | None = None, **options) -> None:
        _refuse_settings_with_new_link(new_link, location=location, site=site)
        language = _language(language, new_link=new_link)
        # the admin's: adding a kiosk, and being shown (issuing) its pairing link
        user = command_actor(actor, ([] if new_link else ["recognition.add_kiosk"]) + ["recognition.pair_kiosk"],
                             changes="the kiosk and its pairing link", holders="a superuser has them")
        # behind a proxy, the public origin the deployment already names (a link to 127.0.0.1:8000,
        # the development server's address, opened nothing on the kiosk device)
        # (not a wildcard entry, "https://*.example.org": no device opens that)
        base_url = base_url or next((o for o in settings.CSRF_TRUSTED_ORIGINS if "*" not in o), None)
        if base_url is None and settings.SECURE_SSL_REDIRECT:
            # the production settings (every page on HTTPS): make run's address is no page of this
            # site, and the link printed to it carried a live code that opened nothing on the device
            raise CommandError("this site's public address is not known: pass --base-url https://<the "
                               "site's host> or set DJANGO_CSRF_TRUSTED_ORIGINS (docs/deployment.md)")
        guessed = base_url is None
        base_url = checked_base_url(base_url or LOCAL_URL)
        # the kiosk of that name as names are compared ("front door" is "Front  door"), the exact one first
        existing = Kiosk.objects.filter(name=name.strip()).first()
        if existing is None:
            alike = list(Kiosk.objects.with_name(name).order_by("name"))
            if len(alike) > 1:   # kept from before names were compared so: which one is not known
                raise CommandError(f"{len(alike)} kiosks are named so: {', '.join(repr(k.name) for k in alike)}; "
                                   "give one's exact name")
            existing = alike[0] if alike else None
        if existing is not None and not new_link:
            raise CommandError(f"a kiosk named {existing.name!r} exists; use --new-link for a new pairing link")
        if existing is None and new_link:
            raise CommandError(f"no kiosk named {name!r}")
        if existing is not None:
            try:
                kiosk, code = existing, services.kiosk_pairing_issue(kiosk=existing, actor=user)
            except services.KioskInactive as exc:
                raise CommandError(str(exc)) from exc
        else:
            try:
                kiosk, code = services.kiosk_create(actor=user, name=name, location=location or "",
                                                    site=DEFAULT_SITE if site is None else site, language=language)
            except ValidationError as exc:   # each message with its field ("This field cannot be blank." named none)
                said = ([f"{field}: {m}" for field, messages in exc.message_dict.items() for m in messages]
                        if hasattr(exc, "error_dict") else exc.messages)
                raise CommandError("; ".join(said)) from exc
        url = base_url.rstrip("/") + services.pairing_path(code)
        self.stdout.write(f"Kiosk #{kiosk.pk} “{kiosk.name}” (site {kiosk.site}, language {kiosk.screen_language}"
                          f"{'' if kiosk.language else ', the site default'}).")
        self.stdout.write("Open this one-time pairing link on the kiosk device (it expires at "
                          f"{timezone.localtime(kiosk.pairing_expires_at):%Y-%m-%d %H:%M %Z}):")
        if guessed:   # a site on another address printed a link to nothing, without a word
            # trusted origins of wildcard entries alone name no address a device can open
            origins = ("no DJANGO_CSRF_TRUSTED_ORIGINS" if not settings.CSRF_TRUSTED_ORIGINS
                       else "DJANGO_CSRF_TRUSTED_ORIGINS names wildcard entries alone")
            self.stdout.write(f"(no --base-url and {origins}: the link is on {LOCAL_URL}, make "
                              "run's default address; on any other, run this again with --new-link and --base-url)")
        self.stdout.write(url)   # the last line: scripts read it


def _refuse_settings_with_new_link(new_link: bool, **given: str | None) -> None:
    """``--location`` and ``--site`` with ``--new-link``: refused, as ``--language`` is. That kiosk
    exists and they are changed in the admin; the command printed a new link and ignored them, and
    the operator believed them applied."""
    named = [option for option, value in given.items() if value is not None]
    if new_link and named:
        raise CommandError(f"{' and '.join('--' + o for o in named)} set{'' if len(named) > 1 else 's'} a new "
                           f"kiosk's {' and '.join(named)}; with --new-link the kiosk exists, and its "
                           f"{' and '.join(named)} {'are' if len(named) > 1 else 'is'} changed in the admin "
                           "(Recognition › Kiosks)")


def _language(code: str | None, *, new_link: bool) -> str:
    """``--language``, checked before anything is made: one of the catalogs' codes, blank for the
    site's default (the service's own check says "not a valid choice" and names none). Refused with
    ``--new-link``: that kiosk exists, and its language is changed in the admin, not here."""
    if code is None:
        return ""
    if new_link:
        raise CommandError("--language sets a new kiosk's language; an existing kiosk's is changed in the admin "
                           "(Recognition › Kiosks)")
    code = code.strip()
    if code and code not in languages():
        raise CommandError(f"no kiosk language {code!r}: one of {', '.join(languages())} (the catalogs in "
                           f"recognition/kiosk_text/), or leave it out for the site's default, MASKNET_KIOSK_LANGUAGE "
                           f"({settings.MASKNET_KIOSK_LANGUAGE})")
    return code
