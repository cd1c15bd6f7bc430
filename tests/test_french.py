"""Veil in French: every page of every role, the refusals of the API, the CSV and the PDF, with no English sentence
left over; the catalogue is complete (makemessages finds nothing new, nothing fuzzy or untranslated) and the compiled
catalogue matches it; the language is the person's choice (saved), then the browser's, then VEIL_LANGUAGE."""

from __future__ import annotations

import gettext as gettext_module
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Set as AbstractSet
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from core.models import PersonalLocale
from tests.helpers.factories import logged_in, make_item, make_queue, make_user, pdf_text
from tests.helpers.lead import MONDAY, NOW, make_team, past_shift

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]
ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "locale"
REQUIRE_SERVICES = os.environ.get("VEIL_REQUIRE_SERVICES") == "1"

# Words that are English and never French. One of them in a text means an English sentence was left over.
ENGLISH = frozenset("""
about after again agree agreed all already also always and any anything approve are at back be been before
being blur break breaks by can check-in check-ins choose chosen consent could day days decide decision
don't down each end ended escalate every exposure figure figures first five follow-up for four from had has
have health hello here hidden hour hours how if in into is isn't it it's item items its just keyboard
language last lead leads less limit limits live load more my never next no not nothing now occupational of
off one only other our out over password people person please policy queue queues reason remove report
reports rest reveal revealed review reviewer reviewers save saved send sent settings shift shifts should
show shown sign since soften some someone something start started still take taken team teams than thank
thanks that the their them then there these they this those three time times to today two under until up us
username waiting was we week weeks welcome wellbeing were what when where which while who why will with
would yes you you're your yours
""".split())  # noqa: SIM905
# Names that stay as they are in any language.
ALLOWED = {"veil", "health_access", "who-5", "pdq", "csv", "pdf", "json", "api", "hma", "english", "esc", "oms", "mio",
           "utc"}
WORD = re.compile(r"[A-Za-zÀ-ÿ][A-Za-zÀ-ÿ0-9_'\u2019-]*")


class _Text(HTMLParser):
    """The text a person reads (or hears with a screen reader): text nodes and alt/title/aria-label/placeholder."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self._skip = 0
        self._skipping: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # translate="no" (HTML's own marker) holds data, not words: time-zone names, for instance.
        if tag in ("script", "style") or ("translate", "no") in attrs:
            self._skip += 1
            self._skipping.append(tag)
        for name, value in attrs:
            if name in ("alt", "title", "aria-label", "placeholder", "data-alt-revealed") and value:
                self.texts.append(value)

    def handle_endtag(self, tag: str) -> None:
        if self._skipping and self._skipping[-1] == tag:
            self._skipping.pop()
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.texts.append(" ".join(data.split()))


def english_left(texts: list[str], *, data: AbstractSet[str] = frozenset()) -> list[str]:
    """The texts that still contain an English word (names of people, teams and queues are data, not words)."""
    found = []
    for text in texts:
        words = {w.lower().strip("'\u2019-") for w in WORD.findall(text)} - ALLOWED - data
        if words & ENGLISH:
            found.append(text)
    return found


def page_texts(html: str) -> list[str]:
    parser = _Text()
    parser.feed(html)
    return parser.texts


def assert_french(where: str, html: str) -> None:
    assert '<html lang="fr"' in html, f"{where}: not marked as French"
    left = english_left(page_texts(html))
    assert not left, f"{where}: English left over: {left}"


def french_client(user: Any | None) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="fr") if user is None else logged_in(user)
    if user is not None:
        client.defaults["HTTP_ACCEPT_LANGUAGE"] = "fr-FR,fr;q=0.9"
    return client


def get_ok(client: Client, path: str, status: int = 200) -> str:
    response = client.get(path, follow=True)
    assert response.status_code == status, (path, response.status_code)
    return response.content.decode()


@pytest.fixture
def world(moderator, lead, health, admin_user):
    """French-named data (data is the organisation's words, not Veil's): a queue, a team of five with history."""
    queue = make_queue(name="File générale", purpose="Vérifier les publications signalées.",
                       requester="Équipe Confiance", policies=[("violence", "Violence explicite"),
                                                               ("ok", "Aucune règle enfreinte")])
    for seed in range(3):
        make_item(queue, seed=seed, severity=3, category="violence")
    crew = [moderator, *(make_user(f"camille{n}", "moderator") for n in range(4))]
    team = make_team("Équipe Nord", department="Opérations", members=crew, leads=[lead], health=[health])
    for n, person in enumerate(crew):
        past_shift(person, MONDAY + timedelta(days=n % 5), units={0: 10, 3: 30 + n}, breaks_due=2, breaks_taken=1)
    return {"queue": queue, "team": team}


def test_language_order_saved_then_cookie_then_browser_then_setting(moderator, settings):
    anonymous = Client()
    assert '<html lang="en"' in get_ok(anonymous, "/login/")
    assert '<html lang="fr"' in get_ok(Client(HTTP_ACCEPT_LANGUAGE="fr-BE,fr;q=0.9,en;q=0.5"), "/login/")
    # The login page's switcher: a cookie, for the next visit too.
    anonymous.post("/language/", {"language": "fr", "next": "/login/"})
    assert '<html lang="fr"' in get_ok(anonymous, "/login/")
    # Saved on the account: it wins over the browser, from any machine.
    client = logged_in(moderator)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    assert client.post("/language/", {"language": "fr", "next": "/wellbeing/"})["Location"] == "/wellbeing/"
    assert PersonalLocale.objects.get(user=moderator).language == "fr"
    other_machine = logged_in(moderator)
    other_machine.defaults["HTTP_ACCEPT_LANGUAGE"] = "en-GB"
    assert '<html lang="fr"' in get_ok(other_machine, "/wellbeing/")
    # A language Veil does not have changes nothing; an outside `next` is not followed.
    response = client.post("/language/", {"language": "xx", "next": "https://elsewhere.example/"})
    assert response["Location"] == "/" and PersonalLocale.objects.get(user=moderator).language == "fr"


def test_veil_language_is_the_last_fallback_and_is_validated(monkeypatch):
    env = {**os.environ, "VEIL_LANGUAGE": "fr", "DJANGO_SETTINGS_MODULE": "config.settings"}
    code = "import django; django.setup(); from django.conf import settings; print(settings.LANGUAGE_CODE)"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "fr"
    bad = subprocess.run([sys.executable, "-c", code], env={**env, "VEIL_LANGUAGE": "klingon"}, cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "VEIL_LANGUAGE must be one of en, fr" in bad.stderr
    from config.env import env_choice

    monkeypatch.setenv("VEIL_LANGUAGE", " FR ")
    assert env_choice("VEIL_LANGUAGE", "en", ["en", "fr"]) == "fr"
    monkeypatch.setenv("VEIL_LANGUAGE", "de")
    with pytest.raises(ImproperlyConfigured):
        env_choice("VEIL_LANGUAGE", "en", ["en", "fr"])


def test_a_request_leaves_no_language_behind(moderator):
    """What runs in the same thread after a French page (an eager task, the next request's first middleware) is back
    in the default language and zone."""
    from django.utils import timezone, translation

    PersonalLocale.objects.create(user=moderator, language="fr", time_zone="Africa/Dakar")
    response = logged_in(moderator).get("/wellbeing/")
    assert response["Content-Language"] == "fr"
    assert translation.get_language() == "en" and timezone.get_current_timezone_name() == "UTC"


def test_without_a_preference_the_organisation_language_applies(settings, moderator):
    settings.LANGUAGE_CODE = "fr"
    client = logged_in(moderator)  # no Accept-Language at all
    assert '<html lang="fr"' in get_ok(client, "/wellbeing/")


def test_time_zone_saved_on_the_person_formats_their_times(moderator, settings):
    settings.TIME_ZONE = "UTC"
    client = french_client(moderator)
    response = client.post("/language-and-time/", {"language": "fr", "time_zone": "America/Montreal"})
    assert response.status_code == 302
    saved = PersonalLocale.objects.get(user=moderator)
    assert (saved.language, saved.time_zone) == ("fr", "America/Montreal")
    with time_machine.travel(NOW, tick=False):  # 10:00 UTC is 06:00 in Montréal (summer time from 8 March)
        html = get_ok(client, "/language-and-time/")
    assert "06:00" in html and 'data-time-zone="America/Montreal"' in html
    refused = client.post("/language-and-time/", {"language": "fr", "time_zone": "Mars/Olympus"}, follow=True)
    assert "Choisissez un fuseau horaire dans la liste" in refused.content.decode()
    assert PersonalLocale.objects.get(user=moderator).time_zone == "America/Montreal"


def test_every_page_in_french_moderator(world, moderator):
    client = french_client(moderator)
    queue = world["queue"]
    for path in ("/", "/console/", "/console/preferences/", "/wellbeing/", "/wellbeing/limits/",
                 "/wellbeing/check-in/weekly/", "/wellbeing/break/", "/language-and-time/"):
        assert_french(path, get_ok(client, path))
    # An item in hand: the console's item page (purpose, decision, shortcuts, the warning card).
    client.post("/console/preferences/", {"blur_level": "3", "reveal_seconds": "5", "grayscale_on_reveal": "on",
                                          "cat-violence-warn": "on"})
    item_page = client.post(f"/console/queues/{queue.slug}/next/", follow=True)
    assert_french("item page", item_page.content.decode())
    # A refusal of the API, in French, its code unchanged.
    landed = re.search(r"/console/items/(\d+)/", item_page.redirect_chain[-1][0])
    assert landed is not None, item_page.redirect_chain
    item_id = int(landed.group(1))
    refusal = client.post(f"/api/v1/items/{item_id}/reveal/")
    assert refusal.json()["error"] == "warning_first"
    assert not english_left([refusal.json()["detail"]], data={"violence"}), refusal.json()
    # The decision's messages and refusals.
    html = client.post(f"/console/items/{item_id}/decide/", {"action": "remove", "policy": ""}, follow=True)
    assert_french("refused decision", html.content.decode())
    # A break: the break screen, the refusal to claim during it, and the check-in after it.
    client.post("/wellbeing/break/start/", {"minutes": "5"})
    assert_french("break screen", get_ok(client, "/wellbeing/break/"))
    refused = client.post(f"/api/v1/queues/{queue.slug}/claim/")
    assert refused.json()["error"] == "on_break"
    assert not english_left([refused.json()["detail"]]), refused.json()
    console = client.post(f"/console/queues/{queue.slug}/next/", follow=True).content.decode()
    assert_french("claim during a break", console)
    after = client.post("/wellbeing/break/end/", follow=True).content.decode()
    assert_french("welcome back and check-in", after)
    assert "Comment vous sentez-vous" in after
    ended = client.post("/wellbeing/shift/end/", follow=True).content.decode()
    assert_french("end of shift check-in", ended)


def test_who5_in_its_published_french_wording(moderator):
    html = get_ok(french_client(moderator), "/wellbeing/check-in/weekly/")
    for words in ("Au cours des deux dernières semaines", "Je me suis senti(e) bien et de bonne humeur",
                  "Je me suis senti(e) calme et tranquille",
                  "Je me suis senti(e) plein(e) d&#x27;énergie et vigoureux(se)",
                  "Je me suis réveillé(e) en me sentant frais (fraîche) et dispos(e)",
                  "Ma vie quotidienne a été remplie de choses intéressantes", "Tout le temps", "La plupart du temps",
                  "Plus de la moitié du temps", "Moins de la moitié du temps", "De temps en temps", "Jamais"):
        assert words in html, words


def test_every_page_in_french_lead(world, lead, moderator):
    client = french_client(lead)
    team = world["team"]
    for path in ("/", "/lead/", f"/lead/teams/{team.pk}/", "/console/"):
        assert_french(path, get_ok(client, path))
    refused = client.post(f"/api/v1/lead/teams/{team.pk}/reviewers/{moderator.pk}/break/")
    assert refused.status_code == 409 and refused.json()["error"] == "not_on_shift"
    assert not english_left([refused.json()["detail"]], data={moderator.username}), refused.json()


def test_every_page_in_french_occupational_health(world, health, moderator):
    client = french_client(health)
    department = world["team"].department_id
    week = f"period=week&start={MONDAY.isoformat()}"
    PersonalLocale.objects.create(user=moderator, language="fr")
    french_client(moderator).post("/wellbeing/follow-up-consent/", {"consent": "yes"})
    with time_machine.travel(NOW, tick=False):
        for path in ("/", "/health/", f"/health/departments/{department}/report/?{week}", "/health/follow-up/",
                     f"/health/people/{moderator.pk}/"):
            assert_french(path, get_ok(client, path))
        body = client.get(f"/health/departments/{department}/report.csv?{week}").content.decode()
        first_column = [line.split(",")[0] for line in body.splitlines() if line]
        assert not english_left([*first_column[:3], body.splitlines()[1]]), body[:600]
        pdf = client.get(f"/health/departments/{department}/report.pdf?{week}").content
    lines = [line for line in pdf_text(pdf, layout=True).splitlines() if line.strip()]
    left = english_left(lines, data={"équipe", "nord", "opérations", "health"})
    assert not left, left


def test_every_page_in_french_admin_and_anonymous(admin_user):
    anonymous = Client(HTTP_ACCEPT_LANGUAGE="fr")
    assert_french("login", get_ok(anonymous, "/login/"))
    assert_french("404", get_ok(anonymous, "/nowhere/", status=404))
    response = anonymous.post("/login/", {"username": "personne", "password": "faux"})
    assert_french("failed sign-in", response.content.decode())
    api = anonymous.get("/api/v1/queues/")
    assert api.status_code in (401, 403) and not english_left([api.json()["detail"]]), api.json()
    missing = anonymous.get("/api/v1/nowhere/")
    assert missing.json()["error"] == "not_found" and not english_left([missing.json()["detail"]])
    client = french_client(admin_user)
    assert_french("admin home", get_ok(client, "/"))
    assert '<html lang="fr"' in get_ok(client, "/admin/")


def test_forbidden_page_in_french(health):
    html = french_client(health).get("/console/").content.decode()
    assert_french("403", html)


def test_javascript_catalogue_in_french():
    body = Client(HTTP_ACCEPT_LANGUAGE="fr").get("/jsi18n/").content.decode()
    assert "Mises \\u00e0 jour en direct suspendues" in body or "Mises à jour en direct suspendues" in body


def _copy_sources(to: Path) -> None:
    for name in ("config", "core", "intake", "wellbeing", "review", "integrations", "oversight", "demo", "templates",
                 "static", "locale"):
        shutil.copytree(ROOT / name, to / name, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    shutil.copy(ROOT / "manage.py", to / "manage.py")


@pytest.mark.slow
def test_the_catalogue_is_complete_and_compiled(tmp_path):
    """makemessages over a copy of the sources changes no message: nothing new, nothing gone, nothing fuzzy or
    untranslated; and the committed .mo files say exactly what the .po files say."""
    if shutil.which("xgettext") is None:
        if REQUIRE_SERVICES:
            pytest.fail("gettext is needed to check the catalogue")
        pytest.skip("gettext is not installed")
    _copy_sources(tmp_path)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "VEIL_DATA_DIR": str(tmp_path / "var")}
    for domain in ("django", "djangojs"):
        subprocess.run([sys.executable, "manage.py", "makemessages", "-l", "fr", "-d", domain, "--no-obsolete",
                        "--no-location", "--ignore=var"], cwd=tmp_path, env=env, check=True, capture_output=True)
    for domain in ("django", "djangojs"):
        committed = _entries(ROOT / "locale" / "fr" / "LC_MESSAGES" / f"{domain}.po")
        fresh = _entries(tmp_path / "locale" / "fr" / "LC_MESSAGES" / f"{domain}.po")
        assert set(fresh) - set(committed) == set(), f"{domain}: new messages not in the catalogue"
        assert set(committed) - set(fresh) == set(), f"{domain}: messages no longer used"
        untranslated = [msgid for msgid, (msgstr, fuzzy) in fresh.items() if msgid and (not msgstr or fuzzy)]
        assert not untranslated, f"{domain}: untranslated or fuzzy: {untranslated}"
        mo = ROOT / "locale" / "fr" / "LC_MESSAGES" / f"{domain}.mo"
        with mo.open("rb") as handle:
            # Not type-checked below: the compiled catalogue, a private attribute of gettext
            compiled = gettext_module.GNUTranslations(handle)._catalog  # type: ignore[attr-defined]
        for msgid, (msgstr, _fuzzy) in committed.items():
            if msgid and "\x00" not in msgid:
                # A plural entry is compiled under (msgid, n); its first form is what _entries reads.
                found = compiled.get(msgid, compiled.get((msgid, 0)))
                assert found == msgstr, f"{domain}.mo is older than its .po ({msgid!r})"


def _entries(po: Path) -> dict[str, tuple[str, bool]]:
    """msgid -> (msgstr, fuzzy) of a .po file, read with msgcat's help-free format: enough for Django's output."""
    entries: dict[str, tuple[str, bool]] = {}
    text = po.read_text(encoding="utf-8")
    for block in text.split("\n\n"):
        fuzzy = bool(re.search(r"^#,.*\bfuzzy\b", block, re.M))
        msgid = _field(block, "msgid")
        if msgid is None or block.lstrip().startswith("#~"):
            continue
        plural = _field(block, "msgid_plural")
        msgstr = _field(block, "msgstr") if plural is None else _field(block, "msgstr[0]")
        entries[msgid] = (msgstr or "", fuzzy)
    return entries


def _field(block: str, name: str) -> str | None:
    match = re.search(rf'^{re.escape(name)} ((?:".*"\n?)+)', block, re.M)
    if match is None:
        return None
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', match.group(1))
    return "".join(parts).encode("utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")
