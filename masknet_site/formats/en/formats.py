"""How the staff pages show dates and times in English (``LANGUAGE_CODE`` "en-us").

00-23 hours, as the kiosk's clock and welcome and the attendance pages show them, and dates as the
admin's own columns write them (a kiosk's "last seen", a photo's "created at"): ``2026-12-03
08:59``, the check-in and audit lists too (a person checks in once a day by default: the minute is
enough, and the CSV exports keep the seconds; the capture page's log of its bursts adds them).
Django's English formats ("Dec. 3, 2026, 8:59 a.m.") appeared beside those wherever the admin
shows a date or time field itself (people, photos, runs, audit events, a check-in's page).
Settings alone cannot change them: since Django 5.0 formats are always localized, and the active
language's format module wins over ``TIME_FORMAT`` and the like in settings; a module here is read
before Django's own (``django.utils.formats.iter_format_modules``). Only display formats: what
forms accept (``*_INPUT_FORMATS``) stays Django's, and the CSV exports write ISO 8601 whatever
these say.
"""

DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i"
DATETIME_FORMAT = "Y-m-d H:i"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
