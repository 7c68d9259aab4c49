"""ASGI entry point: HTTP goes to Django's own handler, WebSockets to Channels consumers behind auth."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from accounts.ws_auth import TokenOrSessionAuthMiddlewareStack  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402
from chat.streaming import recover_at_startup  # noqa: E402

recover_at_startup()

if settings.EMBEDDING_PRELOAD:
    from models_mgmt.embeddings import embedder  # noqa: E402

    embedder.preload()  # before the server serves: a later first load would starve the event loop


def tune_gc_for_serving() -> None:
    """Keep long garbage-collector pauses off the streaming path: start-up objects (Django, DRF, the URL map)
    are frozen out of the collector, and the youngest generation is collected less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(settings.GC_GEN0_THRESHOLD, 20, 100)


if settings.GC_TUNING:
    tune_gc_for_serving()


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(TokenOrSessionAuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
