"""Intake's start-up check: the near-duplicate thresholds must parse (registered by IntakeConfig.ready)."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register


@register()
def neardup_thresholds_check(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    from intake.matching import thresholds

    try:
        thresholds()
    except (TypeError, ValueError) as exc:
        return [Error(f"VEIL_NEARDUP_THRESHOLDS is not valid: {exc}", id="veil.E001")]
    return []
