"""Turn off Twisted's own parsing of form bodies in daphne, so Django parses (and answers for) every body.

daphne's WebRequest is a twisted.web.http.Request, which by default parses a POSTed multipart/form-data or
url-encoded body into `request.args` before daphne hands the request to the ASGI app. daphne never reads `args`, so
that parse only costs memory (the whole body, many times over), and a malformed multipart body makes Twisted answer
a bare, empty 400 itself: the client gets no `{"error", "detail"}` and Veil never sees the request. With the parse
off, Django's parser (bounded by the upload handlers) reads the body and a malformed one becomes the API's JSON 400.

Twisted has the switch (`parsePOSTFormSubmission`, Twisted 24.10+) but daphne passes no arguments to the request it
builds, so the default is changed here, once, when the ASGI application is imported by the serving process. On an
older Twisted without the switch this does nothing.
"""

from __future__ import annotations

import inspect
from typing import Any


def disable_twisted_form_parsing() -> bool:
    """Returns whether the switch exists (and is now off for every request daphne builds in this process)."""
    try:
        from daphne.http_protocol import WebRequest
        from twisted.web import http
    except ImportError:  # not served by daphne (tests in-process, another ASGI server)
        return False
    if "parsePOSTFormSubmission" not in inspect.signature(http.Request.__init__).parameters:
        return False
    if getattr(WebRequest, "_veil_form_parsing_off", False):
        return True
    original = WebRequest.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("parsePOSTFormSubmission", False)
        original(self, *args, **kwargs)

    WebRequest.__init__ = __init__  # type: ignore[method-assign]
    WebRequest._veil_form_parsing_off = True  # type: ignore[attr-defined]
    return True
