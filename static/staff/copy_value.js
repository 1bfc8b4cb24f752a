// The Copy button beside a long value shown whole (templates/admin/_copy_value.html: a kiosk's
// pairing link, a new API token). It selects the value, so the operator sees what is copied and can
// copy it themselves where the browser will not, then copies it: the Clipboard API where the page
// may use it (HTTPS, or localhost), else the older execCommand('copy') (a site on plain HTTP).
// A static file: the site's Content-Security-Policy allows no inline script. Without this script the
// button stays hidden and a tap on the value still selects all of it (CSS user-select: all).
'use strict';
(function () {
    const SELECTED = 'Selected: copy it with Ctrl+C (⌘C), or your phone’s Copy.';

    function selectAll(el) {
        const range = document.createRange();
        range.selectNodeContents(el);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
    }

    function copyBySelection() {
        try {
            return document.execCommand('copy');
        } catch (e) {
            return false;
        }
    }

    function setUp(button) {
        const value = document.getElementById(button.dataset.copy);
        const status = button.parentElement.querySelector('.copy-value-status');
        if (!value) return;
        const say = (text) => { if (status) status.textContent = text; };
        button.addEventListener('click', function () {
            selectAll(value);
            if (navigator.clipboard && window.isSecureContext) {
                navigator.clipboard.writeText(value.textContent.trim()).then(
                    () => say('Copied.'), () => say(copyBySelection() ? 'Copied.' : SELECTED));
            } else {
                say(copyBySelection() ? 'Copied.' : SELECTED);
            }
        });
        button.hidden = false;
    }

    document.querySelectorAll('button[data-copy]').forEach(setUp);
})();
