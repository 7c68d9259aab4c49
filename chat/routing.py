"""WebSocket routes; the chat consumer is added by the streaming engine."""

websocket_urlpatterns: list = []
