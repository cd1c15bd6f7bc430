"""The person's language and time zone: chosen by them, saved on their account, applied to every request.

Order for the language: the choice saved on the account (moderation.PersonalLocale), then the language cookie the
login page's switcher sets, then the browser's Accept-Language, then VEIL_LANGUAGE. Django's LocaleMiddleware does
the last three; this middleware, after authentication, puts the saved choice first and activates the time zone
(the saved one, else VEIL_TIME_ZONE) so dates and times render in the person's own time.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import formats, timezone, translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import trans_real
from django.views.decorators.http import require_POST

from core.models import PersonalLocale


@lru_cache(maxsize=1)
def time_zone_names() -> list[str]:
    return sorted(zoneinfo.available_timezones())


def saved_locale(user: Any) -> PersonalLocale | None:
    if not getattr(user, "is_authenticated", False):
        return None
    if not hasattr(user, "_veil_locale"):  # once per request
        user._veil_locale = PersonalLocale.objects.filter(user=user).first()
    found: PersonalLocale | None = user._veil_locale
    return found


def language_of(user: Any) -> str:
    """The language to write to someone in outside their own request (a message their lead's action sends them)."""
    chosen = PersonalLocale.objects.filter(user=user).values_list("language", flat=True).first()
    return chosen or settings.LANGUAGE_CODE


def locale_for_scope(scope: dict[str, Any]) -> tuple[str, str]:
    """(language, time zone) for a websocket: the person's saved choice, else the browser's Accept-Language (as on
    their pages), else VEIL_LANGUAGE; their saved zone, else VEIL_TIME_ZONE."""
    chosen = saved_locale(scope.get("user"))
    language = chosen.language if chosen is not None and chosen.language else ""
    if not language:
        headers = dict(scope.get("headers") or [])
        accept = headers.get(b"accept-language", b"").decode("latin-1")
        for code, _quality in trans_real.parse_accept_lang_header(accept):
            try:
                language = translation.get_supported_language_variant(code)
                break
            except LookupError:
                continue
    zone = chosen.time_zone if chosen is not None and chosen.time_zone else settings.TIME_ZONE
    return language or settings.LANGUAGE_CODE, zone


class PersonalLocaleMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        chosen = saved_locale(getattr(request, "user", None))
        if chosen is not None and chosen.language:
            translation.activate(chosen.language)
            request.LANGUAGE_CODE = chosen.language
        zone = chosen.time_zone if chosen is not None and chosen.time_zone else settings.TIME_ZONE
        try:
            timezone.activate(zoneinfo.ZoneInfo(zone))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.activate(zoneinfo.ZoneInfo(settings.TIME_ZONE))
        try:
            response = self.get_response(request)
            response.headers.setdefault("Content-Language", translation.get_language())
            return response
        finally:
            # Nothing outside this request (a task run in this thread, the next request's early middleware) inherits
            # this person's language or zone.
            translation.deactivate()
            timezone.deactivate()


def locale_context(request: HttpRequest) -> dict[str, Any]:
    """For the switchers in base.html and on the login page."""
    return {
        "veil_languages": settings.LANGUAGES,
        "veil_time_zone": timezone.get_current_timezone_name(),
        # Only a zone the person chose: otherwise the console's clocks follow the browser's own zone.
        "veil_saved_time_zone": getattr(saved_locale(getattr(request, "user", None)), "time_zone", ""),
    }


def _back(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.headers.get("referer") or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        return "/"
    return target


@require_POST
def choose_language(request: HttpRequest) -> HttpResponse:
    """The header's and the login page's switcher: saved on the account when signed in, and in a cookie either way
    (so the sign-in page after signing out stays in the same language)."""
    language = request.POST.get("language", "")
    response = HttpResponseRedirect(_back(request))
    if language not in dict(settings.LANGUAGES):
        return response
    if request.user.is_authenticated:
        PersonalLocale.objects.update_or_create(user=request.user, defaults={"language": language})
    return _remembered(response, language)


def _remembered(response: HttpResponse, language: str) -> HttpResponse:
    """The language cookie, which the sign-in page (before anyone is known) and LocaleMiddleware read."""
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME, language, max_age=settings.LANGUAGE_COOKIE_AGE, samesite="Lax",
        secure=settings.LANGUAGE_COOKIE_SECURE, httponly=True,
    )
    return response


def locale_settings(request: HttpRequest) -> HttpResponse:
    """Language and time zone of a signed-in person (any role)."""
    if not request.user.is_authenticated:
        from django.contrib.auth.views import redirect_to_login

        return redirect_to_login(request.get_full_path())
    chosen = saved_locale(request.user)
    if request.method == "POST":
        language = request.POST.get("language", "")
        zone = request.POST.get("time_zone", "")
        if language not in dict(settings.LANGUAGES) and language != "":
            messages.error(request, _("Choose one of the offered languages."))
        elif zone not in time_zone_names() and zone != "":
            messages.error(request, _("Choose a time zone from the list, for example Europe/Paris."))
        else:
            PersonalLocale.objects.update_or_create(user=request.user,
                                                    defaults={"language": language, "time_zone": zone})
            if language:
                translation.activate(language)
            messages.success(request, _("Saved. Dates and times are now shown in your time zone."))
            response = HttpResponseRedirect(request.path)
            return _remembered(response, language) if language else response
    return render(request, "locale_settings.html", {
        "chosen_language": chosen.language if chosen else "",
        "chosen_zone": chosen.time_zone if chosen else "",
        "default_zone": settings.TIME_ZONE,
        "zones": time_zone_names(),
        "now_local": formats.date_format(timezone.localtime(), "DATETIME_FORMAT"),
    })
