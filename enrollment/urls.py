"""Photo files for authorised staff (never served from MEDIA_URL)."""

from django.urls import path

from . import views

app_name = "enrollment"
urlpatterns = [
    path("photos/<int:pk>/image", views.photo_image, name="photo-image"),
    path("photos/<int:pk>/thumb", views.photo_thumb, name="photo-thumb"),
]
