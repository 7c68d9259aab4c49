"""ASGI entry point: HTTP goes to Django, WebSockets to Channels consumers behind auth."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from accounts.ws_auth import TokenOrSessionAuthMiddlewareStack  # noqa: E402
from chat.generation import recover_at_startup  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402

recover_at_startup()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(TokenOrSessionAuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
