"""Shared by the seed_demo tests: running the command, and the fixtures data_dir and few_items (registered in
tests/conftest.py)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from demo.management.commands import seed_demo


def seed(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    # seed_demo hashes and checks four passwords per run; the production hasher would make that the slow part.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return tmp_path


@pytest.fixture
def few_items(monkeypatch):
    """The account and password tests do not need forty pictures, nor weeks of wellbeing history."""
    monkeypatch.setattr(seed_demo, "ITEMS", seed_demo.ITEMS[:2])
    monkeypatch.setattr(seed_demo, "seed_wellbeing_demo", lambda: "Wellbeing demo skipped")
