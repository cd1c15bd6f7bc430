"""Refuse oversized uploads while they stream in, before anything is decoded or kept."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import SkipFile, TemporaryFileUploadHandler


class SizeLimitedUploadHandler(TemporaryFileUploadHandler):
    """Stops reading a file part once it passes VEIL_MAX_UPLOAD_BYTES and flags the request, so the view can answer
    413 naming the limit instead of silently seeing no file."""

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self._received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self._received += len(raw_data)
        if self._received > settings.VEIL_MAX_UPLOAD_BYTES:
            if self.request is not None:
                # Not type-checked below: an attribute Veil adds to the request for its view to read
                self.request.veil_oversized_upload = self.field_name  # type: ignore[attr-defined]
            if getattr(self, "file", None) is not None:
                self.file.close()
            raise SkipFile()
        return super().receive_data_chunk(raw_data, start)
