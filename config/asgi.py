"""ASGI entry point: HTTP through Django, websockets through Channels (session auth; origin: scheme, host, port)."""

import gc
import os

from config import http_handler, http_limits

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Django's ASGI handler, each request served in one thread as its WSGI handler would (see config/http_handler.py).
django_asgi_app = http_handler.get_application()
# Daphne reads request bodies before Django: bound them there (VEIL_MAX_REQUEST_BYTES), for every request, and
# leave multipart parsing to Django (a malformed body gets the API's JSON 400, not Twisted's bare one).
http_limits.install()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs the app registry loaded above)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from config.daphne_access_log import redact_access_log_queries  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402
from config.websocket_origin import SameOriginValidator  # noqa: E402

redact_access_log_queries()  # query-string values (a signed url=, a stray token) never reach the access log

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# Everything loaded so far (Django, the apps, their modules) lives as long as the process: take it out of the cyclic
# garbage collector's view, so a full collection only walks what was made since (the sockets, their consumers).
# Such a collection used to pause a web process serving 500 consoles for ~150 ms (docs/benchmarks.md, issue 20).
gc.freeze()
