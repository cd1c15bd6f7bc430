"""The live team view and the OH report in a real browser (Debian's Chromium through Playwright, against daphne on
the test database). Screenshots land in /work/main/screenshots/ so a person can look at what a lead and an OH
nurse see."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from demo.wellbeing import seed_wellbeing_demo
from tests.helpers.browser import SCREENSHOTS, new_page, shoot, sign_in
from tests.helpers.factories import PASSWORD, make_queue, make_user
from tests.helpers.lead import make_team
from tests.helpers.livesrv import chromium_browser
from wellbeing import services
from wellbeing.models import Break, Department, Team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
ROW_STATE = "(id) => document.querySelector(`tr[data-reviewer=\"${id}\"]`).getAttribute('data-state') === 'on_break'"


def test_the_lead_sees_a_moderator_go_on_a_break_live(live_daphne: str) -> None:
    lead = make_user("lee", "team_lead")
    moderator = make_user("mo", "moderator")
    moderator.first_name, moderator.last_name = "Mo", "Reyes"
    moderator.save()
    team = make_team("Riverbank first line", department="Operations", members=[moderator], leads=[lead])
    services.shift_start(reviewer=moderator)
    with chromium_browser() as browser:
        lead_page, errors = new_page(browser)
        sign_in(lead_page, live_daphne, "lee")
        lead_page.goto(f"{live_daphne}/lead/teams/{team.pk}/")
        lead_page.wait_for_selector("#team-live[data-state='live']")
        row = lead_page.locator(f"tr[data-reviewer='{moderator.pk}']")
        assert row.locator("[data-field='state_text']").inner_text() == "Reviewing"

        mod_page, mod_errors = new_page(browser)
        sign_in(mod_page, live_daphne, "mo")
        mod_page.goto(f"{live_daphne}/wellbeing/break/")
        mod_page.get_by_role("button", name="Start my break").click()
        mod_page.wait_for_selector("#rest-now")

        # No reload: the socket brings the change.
        lead_page.wait_for_function(ROW_STATE, arg=moderator.pk, timeout=5_000)
        assert row.locator("[data-field='state_text']").inner_text().startswith("On break until ")
        assert row.get_by_role("button", name="Send on a break").is_hidden()
        shoot(lead_page, "9-lead-sees-a-break")

        # The moderator sees that the lead looked, and can agree to (or refuse) OH follow-up there.
        mod_page.goto(f"{live_daphne}/wellbeing/")
        looks = mod_page.locator("section[aria-labelledby='looks-title']")
        assert "Live team view" in looks.inner_text() and "lee" in looks.inner_text()
        mod_page.get_by_role("button", name="Occupational health may contact me by name").click()
        mod_page.wait_for_selector("text=You agreed that occupational health may contact you by name")
        mod_page.locator("#followup-title").scroll_into_view_if_needed()
        shoot(mod_page, "16-my-wellbeing-consent-and-looks")
        assert errors == [] and mod_errors == []
    assert Break.objects.get(reviewer=moderator).kind == "voluntary"


def _sign_in_elsewhere(page, base_url: str, username: str, lands_on: str) -> None:
    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}{lands_on}")


@pytest.mark.slow
def test_a_lead_and_an_oh_nurse_look_at_the_demo(live_daphne: str) -> None:
    """The demo's teams and weeks of history, as `make run` seeds them, seen by the lead and by OH."""
    for slug, name in (("reported-posts", "Reported posts"), ("marketplace-listings", "Marketplace listings"),
                       ("specialist-violence", "Graphic violence (specialist)")):
        make_queue(slug=slug, name=name)
    make_user("moderator", "moderator")
    make_user("lead", "team_lead")
    make_user("health", "occupational_health")
    seed_wellbeing_demo()
    riverbank = Team.objects.get(name="Riverbank first line")
    operations = Department.objects.get(name="Trust & Safety operations")
    specialist = Department.objects.get(name="Specialist review")
    with chromium_browser() as browser:
        lead_page, errors = new_page(browser)
        sign_in(lead_page, live_daphne, "lead")
        lead_page.get_by_role("link", name="My team").click()
        lead_page.wait_for_url(f"{live_daphne}/lead/teams/{riverbank.pk}/")
        lead_page.wait_for_selector("#team-live[data-state='live']")
        assert lead_page.locator("tr[data-state='on_break']").count() >= 1
        assert lead_page.locator("tr[data-state='off']").count() >= 1
        shoot(lead_page, "10-lead-dashboard")

        oh_page, oh_errors = new_page(browser)
        _sign_in_elsewhere(oh_page, live_daphne, "health", "/")
        oh_page.get_by_role("link", name="Open the health reports").click()
        oh_page.wait_for_url(f"{live_daphne}/health/")
        shoot(oh_page, "11-oh-home")
        oh_page.get_by_role("link", name="Trust & Safety operations").click()
        oh_page.wait_for_url(f"{live_daphne}/health/departments/{operations.pk}/report/")
        assert oh_page.locator("svg.chart").count() == 3
        assert oh_page.locator("td.cell--hidden").count() == 0  # teams of 8 and 6: nothing to hide
        shoot(oh_page, "12-oh-report")
        oh_page.goto(f"{live_daphne}/health/departments/{specialist.pk}/report/?period=month")
        assert oh_page.locator("td.cell--hidden").count() > 20  # a team of 4, and its sibling of 5 with it
        shoot(oh_page, "13-oh-report-suppressed")
        oh_page.goto(f"{live_daphne}/health/follow-up/")
        assert oh_page.get_by_role("heading", name="People who agreed to be contacted").is_visible()
        shoot(oh_page, "14-oh-follow-up")
        response = oh_page.request.get(f"{live_daphne}/health/departments/{operations.pk}/report.pdf?period=month")
        pdf = response.body()
        assert response.ok and pdf.startswith(b"%PDF-")
        assert errors == [] and oh_errors == []
    if shutil.which("pdftoppm"):  # for a person to look at; the PDF itself is tested in test_reports_oh
        SCREENSHOTS.mkdir(exist_ok=True)
        source = SCREENSHOTS / "15-oh-report.pdf"
        source.write_bytes(pdf)
        subprocess.run(["pdftoppm", "-png", "-r", "70", "-f", "1", "-l", "1", "-singlefile", str(source),
                        str(SCREENSHOTS / "15-oh-report-pdf")], check=True, timeout=60)
        source.unlink()
