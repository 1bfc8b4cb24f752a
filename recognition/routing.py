"""WebSocket routes of the recognition app (the kiosk consumer arrives with the kiosk issue)."""

websocket_urlpatterns: list = []
