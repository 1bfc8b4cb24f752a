"""Top-level URL configuration."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from recognition import views as recognition_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", recognition_views.healthz, name="healthz"),
    path("enrollment/", include("enrollment.urls")),
    path("api/", include("api.urls")),
    path("", include("recognition.urls")),
    # staff land on today's attendance (which asks them to log in first)
    path("", RedirectView.as_view(pattern_name="attendance-day"), name="home"),
]
