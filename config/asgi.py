"""ASGI entry point: HTTP through Django, websockets through Channels (session auth, origin checked)."""

import os

from django.core.asgi import get_asgi_application

from config import http_limits

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()
# Daphne reads request bodies before Django: bound them there (VEIL_MAX_REQUEST_BYTES), for every request.
http_limits.install()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs the app registry loaded above)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from review_queue.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
