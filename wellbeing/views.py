"""My wellbeing, the break screen, check-ins, personal limits and the export: thin views over services/selectors.

Every page shows the signed-in person's own data only; nothing here takes another user's id.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext, gettext_lazy, gettext_noop
from django.views.decorators.http import require_GET, require_POST

from core.errors import ReviewError
from core.roles import Role, role_required, signed_in
from intake.models import Category
from wellbeing import health_access, own_data, rules, selectors, services
from wellbeing.models import CheckIn, OrganisationPolicy
from wellbeing.templatetags.wellbeing_tags import retry_tag

REVIEWERS = (Role.MODERATOR, Role.TEAM_LEAD)
MOOD_CHOICES = [(1, gettext_lazy("Very low")), (2, gettext_lazy("Low")), (3, gettext_lazy("Okay")),
                (4, gettext_lazy("Good")), (5, gettext_lazy("Very good"))]
# The WHO-5's own answers; French in the WHO's published French version (locale/fr).
WHO5_SCALE = [(5, gettext_lazy("All of the time")), (4, gettext_lazy("Most of the time")),
              (3, gettext_lazy("More than half of the time")), (2, gettext_lazy("Less than half of the time")),
              (1, gettext_lazy("Some of the time")), (0, gettext_lazy("At no time"))]
LOOKS_DAYS = 90
PRIVATE_EXPORT = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


# The units of the limits, as people read them (the keys stay English in code and exports).
UNIT_WORDS = (gettext_noop("minutes"), gettext_noop("seconds"), gettext_noop("hours"), gettext_noop("items"))

def _next_url(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return default


@require_GET
@role_required(*REVIEWERS)
def home(request: HttpRequest) -> HttpResponse:
    user = signed_in(request)
    now = timezone.now()
    services.exposure_settle(reviewer=user)
    overview = selectors.overview(reviewer=user, now=now)
    checkins = selectors.checkins_read(subject=user, reader=user, purpose=gettext("own page"),
                                       since=now - timedelta(days=30))
    return render(request, "wellbeing/home.html", {
        "o": overview,
        "checkins": checkins,
        "shift_ended": request.GET.get("ended") == "1",
        "mood_choices": MOOD_CHOICES,
        "break_message": selectors.break_message(overview.break_state, now=now),
        "shift_ends_text": selectors.clock_phrase(overview.shift.ends_at, now=now) if overview.shift else "",
        "next_shift_text": selectors.clock_phrase(overview.next_shift_at, now=now) if overview.next_shift_at else "",
        "cap_words": selectors.duration_words(overview.policy.exposure_cap_units),
        "week_words": selectors.duration_words(overview.week_total_minutes),
        "retention_months": round(int(settings.VEIL_CHECKIN_RETENTION_DAYS) / 30.4),
        "consent_given": own_data.consent_given(user=user),
        "looks": own_data.looks_at(user=user, since=now - timedelta(days=LOOKS_DAYS))[:30],
        "looks_days": LOOKS_DAYS,
        "checkin_readers": health_access.checkin_readers_of(user=user),
    })


@require_POST
@role_required(*REVIEWERS)
def followup_consent(request: HttpRequest) -> HttpResponse:
    """Give or withdraw consent to individual OH follow-up. Either answer is fine and changes nothing else."""
    user = signed_in(request)
    given = request.POST.get("consent") == "yes"
    own_data.followup_consent_set(user=user, given=given)
    if given:
        messages.success(request, gettext("Thank you. Occupational health may now see your name if your pattern "
                                          "suggests "
                         "a conversation could help. You can withdraw this at any time, here."))
    else:
        messages.success(request, gettext("Done. Occupational health will not see your name in follow-up lists. "
                                          "Nothing "
                         "else changes."))
    return redirect("/wellbeing/#followup-title")


@require_GET
@role_required(*REVIEWERS)
def break_screen(request: HttpRequest) -> HttpResponse:
    user = signed_in(request)
    now = timezone.now()
    state = selectors.break_state(reviewer_id=user.pk, now=now)
    on_break = state.phase == rules.Phase.ON_BREAK
    recent = None if on_break else selectors.break_recent(reviewer=user, now=now)
    return render(request, "wellbeing/break.html", {
        "state": state,
        "on_break": on_break,
        "message": selectors.break_message(state, now=now),
        "ends_text": selectors.clock(state.break_ends_at, now=now),
        "welcome_back": request.GET.get("after") == "1" or recent is not None,
        "sent_by_lead": on_break and own_data.break_started_by_lead(reviewer_id=user.pk, now=now),
        "due": state.phase in (rules.Phase.DUE, rules.Phase.FINISH_ITEM),
        "lengths": services.VOLUNTARY_BREAK_MINUTES,
        "default_minutes": int(selectors.policy_effective(reviewer=user).break_length.total_seconds() // 60),
        "mood_choices": MOOD_CHOICES,
    })


@require_GET
@role_required(*REVIEWERS)
def break_state(request: HttpRequest) -> JsonResponse:
    """The console asks after a reconnect, in case a push was missed while the socket was down."""
    user = signed_in(request)
    payload = selectors.break_payload(selectors.break_state(reviewer_id=user.pk))
    return JsonResponse(payload, headers={"Cache-Control": "no-store"})


@require_POST
@role_required(*REVIEWERS)
def break_start(request: HttpRequest) -> HttpResponse:
    user = signed_in(request)
    raw = request.POST.get("minutes", "")
    try:
        services.break_start(reviewer=user, minutes=int(raw) if raw else None)
    except ValueError:
        messages.error(request, "Choose one of the offered break lengths.")
    except ReviewError as exc:
        messages.error(request, exc.detail)
    return redirect("wellbeing-break")


@require_POST
@role_required(*REVIEWERS)
def break_end(request: HttpRequest) -> HttpResponse:
    user = signed_in(request)
    try:
        services.break_end(reviewer=user)
    except ReviewError as exc:
        messages.info(request, exc.detail)
        return redirect("wellbeing-break")
    return redirect("/wellbeing/break/?after=1")


@require_POST
@role_required(*REVIEWERS)
def shift_start(request: HttpRequest) -> HttpResponse:
    user = signed_in(request)
    try:
        shift = services.shift_start(reviewer=user)
    except ReviewError as exc:
        messages.info(request, exc.detail, extra_tags=retry_tag(exc.retry_at))
        return redirect("wellbeing-home")
    messages.success(request, gettext("Your shift has started. It ends %(ends_at)s at the latest.") % {
        "ends_at": selectors.clock_phrase(shift.ends_at)})
    return redirect(_next_url(request, "/console/"))


@require_POST
@role_required(*REVIEWERS)
def shift_end(request: HttpRequest) -> HttpResponse:
    user = signed_in(request)
    if services.shift_end(reviewer=user) is None:
        messages.info(request, "You are not on a shift.")
        return redirect("wellbeing-home")
    return redirect("/wellbeing/?ended=1")


@require_POST
@role_required(*REVIEWERS)
def checkin(request: HttpRequest) -> HttpResponse:
    user = signed_in(request)
    kind = request.POST.get("kind", "")
    if kind not in (CheckIn.Kind.AFTER_BREAK, CheckIn.Kind.SHIFT_END):
        raise Http404
    try:
        services.checkin_record(user=user, kind=kind, mood=int(request.POST.get("mood", "")))
    except (ValueError, ReviewError):
        messages.info(request, "Nothing was saved. Choose a number from 1 to 5, or simply skip it.")
        return redirect(_next_url(request, "/wellbeing/"))
    messages.success(request, gettext("Thank you. Only you and occupational health can see this."))
    return redirect(_next_url(request, "/wellbeing/"))


@role_required(*REVIEWERS)
def who5(request: HttpRequest) -> HttpResponse:
    user = signed_in(request)
    context: dict[str, object] = {"items": list(enumerate(services.WHO5_ITEMS)), "scale": WHO5_SCALE}
    if request.method == "POST":
        try:
            answers = [int(request.POST.get(f"q{n}", "")) for n in range(len(services.WHO5_ITEMS))]
            services.checkin_record(user=user, kind=CheckIn.Kind.WHO5, who5_answers=answers)
        except (ValueError, ReviewError):
            context["error"] = gettext("Please answer all five statements, or leave this page: it is entirely "
                                       "optional.")
        else:
            # The result is shown from what was just sent, not read back from storage.
            raw = sum(answers)
            context.update({"raw": raw, "percent": raw * 4, "low": raw < services.WHO5_LOW_RAW})
    return render(request, "wellbeing/who5.html", context)


@role_required(*REVIEWERS)
def limits(request: HttpRequest) -> HttpResponse:
    user = signed_in(request)
    organisation = OrganisationPolicy.objects.current()
    personal = selectors.personal_policy_of(user=user)
    entered: dict[str, str] = {}
    errors: dict[str, str] = {}
    opted_out = list(personal.opted_out_categories or [])
    if request.method == "POST":
        # What was typed stays in the boxes, and each problem shows next to its box: nothing is lost to an error.
        entered = {name: request.POST.get(name, "").strip() for name, *_rest in LIMIT_FIELDS}
        opted_out = request.POST.getlist("opt_out")
        values, errors = _limits_from(entered)
        out_of_bounds, looser = services.personal_policy_problems(values=values)
        errors = {**looser, **out_of_bounds, **errors}
        if not errors:
            services.personal_policy_update(user=user, values=values, opted_out_categories=opted_out)
            messages.success(request, gettext("Saved. Your limits apply from your next item."))
            return redirect("wellbeing-limits")
        messages.error(request, "Nothing was saved yet: see the boxes marked below. You can make your limits "
                       "stricter than the organisation's, never looser.")
    fields = _limit_fields(organisation, personal)
    for field in fields:
        name = str(field["name"])
        field["error"] = errors.get(name, "")
        if request.method == "POST":
            field["value"] = entered.get(name, "")
    return render(request, "wellbeing/limits.html", {
        "fields": fields,
        "categories": [(value, label, value in opted_out)
                       for value, label in Category.choices if value != Category.UNSPECIFIED],
    }, status=400 if errors else 200)


# (field, label, unit, seconds per unit, help)
LIMIT_FIELDS = [
    ("exposure_cap_units", gettext_lazy("Exposure limit per shift"), "minutes", None,
     gettext_lazy("Minutes of severe-equivalent exposure; milder items count less.")),
    ("break_every", gettext_lazy("A break after every"), "minutes", 60,
     gettext_lazy("Minutes of work between breaks.")),
    ("break_length", gettext_lazy("Break length"), "minutes", 60, None),
    ("cooldown", gettext_lazy("Pause after a severe item"), "seconds", 1,
     gettext_lazy("No other severe item for this long.")),
    ("severe_per_hour", gettext_lazy("Most severe items in an hour"), "items", None, None),
    ("shift_length", gettext_lazy("Longest shift"), "hours", 3600, None),
]


def _as_number(value: object, per: int | None, *, up: bool = False) -> int | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        seconds, unit = int(value.total_seconds()), per or 1
        return -(-seconds // unit) if up else seconds // unit
    return int(str(value))


def _limit_fields(organisation: object, personal: object) -> list[dict[str, object]]:
    fields: list[dict[str, object]] = []
    for name, label, unit, per, help_text in LIMIT_FIELDS:
        low, high = services.personal_policy_bounds(name=name)
        mine = _as_number(getattr(personal, name), per)
        fields.append({
            "name": name, "label": label, "unit": gettext(unit), "help": help_text,
            "organisation": _as_number(getattr(organisation, name), per), "mine": mine,
            "value": "" if mine is None else str(mine),
            # The browser asks for exactly what the server accepts (rounded inwards to whole units).
            "min": _as_number(low, per, up=True), "max": _as_number(high, per),
        })
    return fields


def _limits_from(entered: dict[str, str]) -> tuple[dict[str, object], dict[str, str]]:
    values: dict[str, object] = {}
    errors: dict[str, str] = {}
    for name, _label, unit, per, _help in LIMIT_FIELDS:
        raw = entered.get(name, "")
        if not raw:
            values[name] = None
            continue
        try:
            number = int(raw)
        except ValueError:
            errors[name] = gettext("Use a whole number of %(unit)s, or leave the box empty for the organisation's "
                                   "setting.") % {"unit": gettext(unit)}
            continue
        values[name] = timedelta(seconds=number * per) if per else number
    return values, errors


@require_GET
@role_required(*REVIEWERS)
def export_json(request: HttpRequest) -> HttpResponse:
    user = signed_in(request)
    services.exposure_settle(reviewer=user)
    data = selectors.export_for(user=user)
    body = json.dumps({"user": user.get_username(), "exported_at": timezone.now().isoformat(), **data}, indent=2)
    return HttpResponse(body, content_type="application/json", headers={
        **PRIVATE_EXPORT, "Content-Disposition": 'attachment; filename="veil-my-wellbeing.json"'})


@require_GET
@role_required(*REVIEWERS)
def export_csv(request: HttpRequest, part: str) -> HttpResponse:
    if part not in selectors.EXPORT_PARTS:
        raise Http404
    user = signed_in(request)
    services.exposure_settle(reviewer=user)
    rows = selectors.export_for(user=user, parts=(part,))[part]
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8", headers={
        **PRIVATE_EXPORT, "Content-Disposition": f'attachment; filename="veil-my-{part}.csv"'})
