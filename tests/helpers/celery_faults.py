"""Veil's Celery app as tests/test_faults.py runs it: `celery -A tests.helpers.celery_faults worker`.

Two test-only changes, both from the environment and neither in production code:
- VEIL_FAULT_VISIBILITY: the broker visibility timeout in seconds (production refuses less than 60), swept every
  second, so an unacknowledged task is redelivered within seconds of its worker being killed.
- VEIL_FAULT_HOLD_FILE: when set, item processing stops right after the derivative files are written and before
  the item row is saved (inside its transaction), touches that file and waits, so the test can SIGKILL the worker
  at the worst moment.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery.signals import worker_ready

from config.celery import app

__all__ = ["app"]

HOLD_SECONDS = 120  # bounded: the test kills the worker long before this

if os.environ.get("VEIL_FAULT_VISIBILITY"):
    app.conf.broker_transport_options = {
        **(app.conf.broker_transport_options or {}),
        "visibility_timeout": int(os.environ["VEIL_FAULT_VISIBILITY"]),
        # kombu sweeps for unacknowledged tasks every interval x throttle seconds (100 s by default).
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }


@worker_ready.connect
def _install_hold(**kwargs: Any) -> None:
    hold_file = os.environ.get("VEIL_FAULT_HOLD_FILE")
    if not hold_file:
        return
    from intake.models import ContentItem

    original_save = ContentItem.save

    def save_then_hold(self: ContentItem, *args: Any, **kw: Any) -> None:
        # The derive step's save: fingerprint set, still processing, renditions already on disk.
        if self.fingerprint and self.status == ContentItem.Status.PROCESSING and not Path(hold_file).exists():
            Path(hold_file).write_text(str(os.getpid()))
            time.sleep(HOLD_SECONDS)
        original_save(self, *args, **kw)

    # Not type-checked below: a fault injected on purpose, replacing a method for one test
    ContentItem.save = save_then_hold  # type: ignore[method-assign,assignment]
