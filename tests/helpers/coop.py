"""Shared by the Coop-style submission tests: items in Coop's shape, submitting a batch, reading the answer by id."""

from __future__ import annotations

import base64
from typing import Any

from rest_framework.test import APIClient

from tests.helpers.factories import image_bytes


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def coop_item(external_id: str, *, type_id: str = "post-type-1", image: Any = None, **data: Any) -> dict[str, Any]:
    images = [data_url(image_bytes(len(external_id) * 7 + ord(external_id[-1])))] if image is None else image
    return {"id": external_id, "typeId": type_id, "data": {"images": images, **data}}


def submit(client: APIClient, items: list[Any], capture: Any = None):
    if capture is None:
        return client.post("/api/v1/items/async/", {"items": items}, format="json")
    with capture(execute=True):
        return client.post("/api/v1/items/async/", {"items": items}, format="json")


def by_id(response) -> dict[str, dict[str, Any]]:
    return {entry["id"]: entry for entry in response.json()["items"]}
