"""Django's ASGI handler, serving each HTTP request in one worker thread, as its WSGI handler would.

Why: Veil's middleware is synchronous (Django's own, whitenoise, axes, Veil's), and so are its views. Under ASGI,
Django's handler still runs the request through its async machinery: `request_started`, the middleware chain
(adapted back and forth around every async-capable middleware), the view and `response.close()` each cross from
daphne's event loop to a thread and back, and every request starts a thread of its own (asgiref's
ThreadSensitiveContext). Profiled through HTTP on the real stack (issue 20), that plumbing was about half of a web
process's CPU, more than Veil's own claim path.

Here the body is read as Django's ASGIHandler reads it (spooled to a temporary file, after daphne has bounded it:
config/http_limits.py), then one thread of a fixed pool runs what Django's WSGIHandler runs: `request_started`, the
request, the whole middleware chain and the view, synchronously, and `response.close()` (so `request_finished`
returns the thread's database connection to the pool in the thread that used it). The response goes back to the
loop to be written. A streaming response (media files, exports) is written from its thread chunk by chunk, then
closed there.

The pool is larger than the database pool (VEIL_HTTP_THREADS, default 32, against VEIL_DB_POOL_SIZE 8), so requests
over the database's capacity wait on the database pool, with its timeout and its 503, as before, not in a queue of
their own. Websockets are untouched (Channels' consumers, config.asgi).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.http import FileResponse, HttpResponseBase
from django.urls import set_script_prefix

Message = dict[str, Any]


class OneHopASGIHandler(ASGIHandler):
    """See the module docstring."""

    def __init__(self) -> None:
        BaseHandler.__init__(self)
        self.load_middleware(is_async=False)  # the chain WSGIHandler runs: synchronous throughout
        self._threads = ThreadPoolExecutor(max_workers=int(settings.VEIL_HTTP_THREADS),
                                           thread_name_prefix="veil-http")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:  # the client went away before its body arrived
            return
        try:
            loop = asyncio.get_running_loop()
            messages = await sync_to_async(self._serve, thread_sensitive=False, executor=self._threads)(
                scope, body_file, loop, send)
            for message in messages:
                await send(message)
        finally:
            body_file.close()

    def _serve(self, scope: dict[str, Any], body_file: Any, loop: asyncio.AbstractEventLoop,
               send: Any) -> list[Message]:
        """In a worker thread: the request from start to close. Returns the messages still to send (none when a
        streaming response was sent from here)."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
        assert isinstance(response, HttpResponseBase)
        # Not type-checked below: an attribute Django's own ASGIHandler sets on every response, not in django-stubs
        response._handler_class = self.__class__  # type: ignore[attr-defined]
        start = self._start(response)
        if not response.streaming:
            # Not type-checked below: HttpResponseBase has no content; a response that is not streaming has
            body = response.content  # type: ignore[attr-defined]
            response.close()  # request_finished, in the thread whose connection it returns
            return [start, *({"type": "http.response.body", "body": chunk, "more_body": not last}
                             for chunk, last in self.chunk_bytes(body))]

        def push(message: Message) -> None:
            asyncio.run_coroutine_threadsafe(send(message), loop).result()

        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        try:
            push(start)
            for part in response:
                for chunk, _last in self.chunk_bytes(part):
                    push({"type": "http.response.body", "body": chunk, "more_body": True})
            push({"type": "http.response.body"})
        finally:
            response.close()
        return []

    @staticmethod
    def _start(response: HttpResponseBase) -> Message:
        """The response's status and headers, cookies included, as ASGIHandler.send_response writes them."""
        headers = []
        for header, value in response.items():
            headers.append((header.encode("ascii") if isinstance(header, str) else bytes(header),
                            value.encode("latin1") if isinstance(value, str) else bytes(value)))
        for cookie in response.cookies.values():
            headers.append((b"Set-Cookie", cookie.output(header="").encode("ascii").strip()))
        return {"type": "http.response.start", "status": response.status_code, "headers": headers}


def get_application() -> OneHopASGIHandler:
    """What django.core.asgi.get_asgi_application() does (setup, then the handler), with this handler."""
    import django

    django.setup(set_prefix=False)
    return OneHopASGIHandler()
