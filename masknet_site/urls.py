"""Top-level URL configuration."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from recognition import views as recognition_views

# the admin says whose it is (it said "Django administration")
admin.site.site_header = "MaskNet administration"
admin.site.site_title = "MaskNet admin"
admin.site.index_title = "People, photos, kiosks and check-ins"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", recognition_views.healthz, name="healthz"),
    # browsers ask for it on every page (the kiosk's links it): a masked face, not a 404 in each log
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("enrollment/", include("enrollment.urls")),
    path("api/", include("api.urls")),
    path("", include("recognition.urls")),
    # staff land on today's attendance (which asks them to log in first), Enrollers on the admin
    path("", recognition_views.home, name="home"),
]

# an error no view answered: the 507 page where the database's disk is full (a session saved after
# the view), else templates/400.html and 500.html
handler400 = "masknet_site.errors.bad_request"
handler500 = "masknet_site.errors.server_error"
