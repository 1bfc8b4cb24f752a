// The admin's time picker (DateTimeShortcuts.js, Django's) in 24-hour times, as every staff page
// writes them: 00:00, 06:00, 12:00 and 18:00 for its "Midnight", "6 a.m.", "Noon" and "6 p.m.".
// Loaded right after DateTimeShortcuts.js (templates/admin/change_form.html), which builds each
// clock from clockHours only on the window's load event, so this is in time. "Now" stays Django's
// word (translated there); a time keeps the form's own format (TIME_INPUT_FORMATS, 06:00:00).
'use strict';
if (window.DateTimeShortcuts) {
    window.DateTimeShortcuts.clockHours.default_ = [
        ['Now', -1], ['00:00', 0], ['06:00', 6], ['12:00', 12], ['18:00', 18],
    ];
}
