"""The refusal every Veil service raises: a stable code, a sentence for the person, an HTTP status."""

from __future__ import annotations

from datetime import datetime


class ReviewError(Exception):
    """A refused action, with a stable code and a sentence for the person who tried it.

    `retry_at`: when trying again can succeed (a break's end, a cool-down's end), for a Retry-After header and a
    time the console shows in the reader's own zone."""

    status = 409

    def __init__(self, code: str, detail: str, *, status: int | None = None, retry_at: datetime | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.retry_at = retry_at
        if status is not None:
            self.status = status
