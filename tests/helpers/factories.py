"""Factories for tests: real objects made through the real services (no fixtures files)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from typing import Any

import factory
import numpy as np
import pytest
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from intake import services
from intake.models import ContentItem
from review.models import Policy, Queue

PASSWORD = "correct horse battery staple"


def make_user(username: str, role: str | None, *, superuser: bool = False) -> User:
    user = User.objects.create_user(username=username, password=PASSWORD, is_superuser=superuser,
                                    is_staff=superuser)
    if role:
        # get_or_create: transactional tests flush the groups the data migration made.
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


# Not type-checked below: factory_boy ships no types (nor its Sequence and post_generation below)
class QueueFactory(factory.django.DjangoModelFactory):  # type: ignore[type-arg]
    class Meta:
        model = Queue
        skip_postgeneration_save = True

    slug = factory.Sequence(lambda n: f"queue-{n}")  # type: ignore[attr-defined,no-untyped-call]
    name = factory.Sequence(lambda n: f"Queue {n}")  # type: ignore[attr-defined,no-untyped-call]
    purpose = "Check reported posts against the community rules before they are shown again."
    requester = "Trust & Safety, Example Social"

    @factory.post_generation  # type: ignore[attr-defined]
    def policies(self: Queue, create: bool, extracted: Any, **kwargs: Any) -> None:
        if not create:
            return
        for position, (code, title) in enumerate(extracted or [("violence", "Graphic violence"),
                                                               ("nudity", "Adult nudity"),
                                                               ("ok", "No rule broken")]):
            Policy.objects.create(queue=self, code=code, title=title, position=position)


def make_queue(**fields: Any) -> Queue:
    """QueueFactory with a type mypy can follow."""
    # Not type-checked below: factory_boy ships no types; the factory returns the model instance.
    queue: Queue = QueueFactory(**fields)  # type: ignore[no-untyped-call,assignment]
    return queue


def image_bytes(seed: int, *, size: tuple[int, int] = (320, 240), fmt: str = "PNG") -> bytes:
    """A distinct synthetic picture per seed: blocks of random colour, so different seeds hash far apart."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    image = Image.fromarray(blocks, "RGB").resize(size, Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def upload(data: bytes, name: str = "picture.png", content_type: str = "image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def make_item(queue: Queue, *, seed: int = 0, severity: int = 0, category: str = "unspecified",
              external_id: str = "", submitted_by: User | None = None, process: bool = True) -> ContentItem:
    """Ingest a synthetic image through the real service and run the real media pipeline on it."""
    item = services.item_ingest(queue=queue, upload=upload(image_bytes(seed)), submitted_by=submitted_by,
                                external_id=external_id, category=category, severity=severity)
    if process:
        services.item_process(item_id=item.pk)
        item.refresh_from_db()
    return item


def logged_in(user: User) -> Client:
    """A test client signed in as `user` (no password round trip)."""
    client = Client()
    client.force_login(user)
    return client


def pdf_text(pdf: bytes, *, layout: bool = False) -> str:
    """The text of a PDF through poppler's pdftotext (`layout`: keep the lines as laid out). Skips the test where
    pdftotext is missing, and fails instead under VEIL_REQUIRE_SERVICES=1 (CI installs poppler-utils)."""
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        if os.environ.get("VEIL_REQUIRE_SERVICES") == "1":
            pytest.fail("VEIL_REQUIRE_SERVICES=1 but pdftotext (Debian's poppler-utils) is missing")
        pytest.skip("pdftotext is not installed (apt-get install -y poppler-utils)")
    command = [pdftotext, *(["-layout"] if layout else []), "-", "-"]
    return subprocess.run(command, input=pdf, capture_output=True, check=True, timeout=60).stdout.decode()
