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
// Each calendar and clock link is an icon alone, its words in the icon's title, which screen readers
// do not reliably read: the link is named "Choose a Date: <the input's own name>" (the inputs of
// LabelledSplitDateTime say "Expires at (date)"). After DateTimeShortcuts' own load handler, which
// made the links (it was registered first).
window.addEventListener('load', function () {
    document.querySelectorAll('a[id^="calendarlink"], a[id^="clocklink"]').forEach(function (link) {
        const icon = link.querySelector('[title]');
        const shortcuts = link.closest('.datetimeshortcuts');
        const input = shortcuts && shortcuts.previousElementSibling;
        if (!icon || link.hasAttribute('aria-label')) {
            return;
        }
        const named = input && (input.getAttribute('aria-label') || (input.labels && input.labels[0] &&
            input.labels[0].textContent.trim()));
        link.setAttribute('aria-label', named ? icon.title + ': ' + named : icon.title);
    });
});
