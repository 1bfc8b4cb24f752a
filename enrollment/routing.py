"""WebSocket routes of the enrollment app."""

from django.urls import path

from .consumers import TrainingProgressConsumer

websocket_urlpatterns = [
    path("ws/admin/training/", TrainingProgressConsumer.as_asgi()),
]
