"""`{% wellbeing_banner %}` in base.html: the calm break notice, rendered by the server on every console page and
kept current by static/veil/wellbeing.js from websocket pushes."""

from __future__ import annotations

from typing import Any

from django import template

from core.roles import Role, has_role
from wellbeing import rules, selectors

register = template.Library()

NOTICE_PHASES = (rules.Phase.DUE, rules.Phase.FINISH_ITEM, rules.Phase.ON_BREAK)


@register.inclusion_tag("wellbeing/_banner.html", takes_context=True)
def wellbeing_banner(context: template.Context) -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not has_role(user, Role.MODERATOR, Role.TEAM_LEAD):
        return {"show": False}
    state = selectors.break_state(reviewer_id=user.pk)
    match = getattr(request, "resolver_match", None)
    url_name = match.url_name if match is not None else ""
    return {
        "show": True,
        "phase": state.phase.value,
        "message": selectors.break_message(state) if state.phase in NOTICE_PHASES else "",
        # Console pages are the break screen while a break runs (review.views.rest_during_breaks redirects on
        # the server; this covers a page that was open when the break began).
        "redirect": state.phase == rules.Phase.ON_BREAK and str(url_name).startswith("console-"),
        "console_page": str(url_name).startswith("console-"),
        "on_break_page": url_name == "wellbeing-break",
    }


@register.filter
def duration_words(value: Any) -> str:
    """A timedelta (or minutes) in plain words: "50 min", "1 h 10 min"."""
    if hasattr(value, "total_seconds"):
        seconds = int(value.total_seconds())
        return selectors.duration_words(seconds // 60, seconds=seconds)
    return selectors.duration_words(int(value))


RETRY_TAG = "retry-at="


def retry_tag(retry_at: Any) -> str:
    """extra_tags for a message that says when trying again can work (see the `retry_at` filter)."""
    return f"{RETRY_TAG}{retry_at.isoformat()}" if retry_at is not None else ""


@register.filter
def retry_at(message: Any) -> str:
    """The ISO moment a refusal's message carries (messages.info(..., extra_tags=retry_tag(...))), or "": base.html
    shows it as a <time> that static/veil/console.js writes out in the reader's own time zone."""
    for tag in str(getattr(message, "extra_tags", "") or "").split():
        if tag.startswith(RETRY_TAG):
            return tag[len(RETRY_TAG):]
    return ""
