// Django's navigation sidebar takes about 300 px beside every admin list: under 1536 px wide the
// lists ran sideways in their box (the people list by 102 px at 1280, the photos by 195, the audit
// log's Summary squeezed to 160 px). There it starts closed (Django's own toggle opens it, and
// Django keeps that choice, as it keeps any). Loaded without defer before Django's nav_sidebar.js,
// which reads the choice once the page is parsed (templates/admin/change_list.html).
'use strict';
try {
    if (localStorage.getItem('django.admin.navSidebarIsOpen') === null && window.innerWidth < 1536) {
        localStorage.setItem('django.admin.navSidebarIsOpen', 'false');
    }
} catch (error) {
    // storage refused (a private window's policy): Django's default, open
}
