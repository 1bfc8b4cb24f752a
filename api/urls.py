"""URLs of the API: ``/api/v1/...``, the OpenAPI schema at ``/api/schema/`` and its documentation
page for staff at ``/api/docs/`` (Swagger UI served from drf-spectacular-sidecar's static files; its
init script from ``/api/docs/?script=``, the same staff-only view, so that the page needs no inline
script under the site's Content-Security-Policy, masknet_site/middleware.py)."""

from django.contrib.admin.views.decorators import staff_member_required
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter(trailing_slash=False)
router.register("people", views.PersonViewSet, basename="person")
router.register("checkins", views.CheckInViewSet, basename="checkin")
router.register("kiosks", views.KioskViewSet, basename="kiosk")
router.register("index/rebuilds", views.RebuildViewSet, basename="rebuild")

photos = views.PhotoViewSet.as_view({"get": "list", "post": "create"})
photo = views.PhotoViewSet.as_view({"get": "retrieve", "delete": "destroy"})

v1 = [
    # ids of at most 18 digits: larger numbers would overflow the database's 64-bit integers
    re_path(r"^people/(?P<person_pk>[0-9]{1,18})/photos$", photos, name="photo-list"),
    re_path(r"^people/(?P<person_pk>[0-9]{1,18})/photos/(?P<pk>[0-9]{1,18})$", photo, name="photo-detail"),
    path("identify", views.IdentifyView.as_view(), name="identify"),
    path("verify", views.VerifyView.as_view(), name="verify"),
    path("index", views.IndexView.as_view(), name="index"),
    *router.urls,
]

urlpatterns = [
    path("v1/", include((v1, "v1"))),
    # open to anyone (no data): built once per process (views.SchemaView)
    path("schema/", views.SchemaView.as_view(), name="api-schema"),
    path("docs/", staff_member_required(SpectacularSwaggerSplitView.as_view(url_name="api-schema")), name="api-docs"),
    # any character, a newline (%0A) too: ``.`` stops at one, and such a path got Django's HTML 404
    re_path(r"^(?P<path>[\s\S]*)$", views.not_found),
]
