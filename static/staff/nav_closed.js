// Django's navigation sidebar takes about 300 px beside every admin page: under 1536 px wide the
// lists ran sideways in their box (the people list by 102 px at 1280, the photos by 195, the audit
// log's Summary squeezed to 160 px). There it starts closed. Django's nav_sidebar.js (deferred)
// reads the saved choice once the page is parsed; this script (not deferred, in the head:
// templates/admin/base_site.html) lends it "closed" for that read and takes it back afterwards, so
// that only the person's own use of the toggle is saved (saved, a narrow window's default stayed on
// wide screens: a review).
'use strict';
(function () {
    const KEY = 'django.admin.navSidebarIsOpen';
    try {
        if (localStorage.getItem(KEY) !== null || window.innerWidth >= 1536) {
            return;
        }
        localStorage.setItem(KEY, 'false');
        document.addEventListener('DOMContentLoaded', function () {
            if (localStorage.getItem(KEY) === 'false') {
                localStorage.removeItem(KEY);   // read by now; a click of the toggle saves again
            }
        });
    } catch (error) {
        // storage refused (a private window's policy): Django's default, open
    }
})();
