"""Top-level URL configuration."""

from django.contrib import admin
from django.urls import include, path

from recognition import views as recognition_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", recognition_views.healthz, name="healthz"),
    path("enrollment/", include("enrollment.urls")),
    path("api/", include("api.urls")),
    path("", include("recognition.urls")),
]
