"""Intake's start-up check: the near-duplicate thresholds must parse (registered by IntakeConfig.ready)."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register

from intake.matching import thresholds


@register()
def neardup_thresholds_check(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    try:
        thresholds()
    except (TypeError, ValueError) as exc:
        return [Error(f"VEIL_NEARDUP_THRESHOLDS is not valid: {exc}", id="veil.E001")]
    return []
