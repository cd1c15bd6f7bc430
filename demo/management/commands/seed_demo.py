"""`manage.py seed_demo`: demo accounts, queues and synthetic items. `make run` runs it every time, so it is
idempotent and quick: accounts and queues are made only when missing, items only when the demo queues are empty,
and passwords change only with --reset-passwords."""

from __future__ import annotations

import logging
import os
import secrets
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from PIL import Image

from core.roles import Role
from demo import content as demo
from demo.wellbeing import seed_wellbeing_demo
from intake import services
from intake.models import Category, ContentItem, Severity
from review.models import Policy, Queue

DEMO_URL = "http://127.0.0.1:8000/"


def demo_url(host: str, port: int) -> str:
    """The address to open for a server bound to host:port (a wildcard bind is opened on the loopback address)."""
    if host in ("", "0.0.0.0"):  # noqa: S104 (naming the wildcard, not binding to it)
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}/"
LOGINS_FILE = "demo-logins.txt"
REQUESTER_ACCOUNT = "demo-requester"


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: str  # as printed in the logins table
    group: Role | None
    superuser: bool = False


ACCOUNTS = (
    DemoAccount("moderator", "moderator", Role.MODERATOR),
    DemoAccount("lead", "team_lead", Role.TEAM_LEAD),
    DemoAccount("health", "occupational_health", Role.OCCUPATIONAL_HEALTH),
    DemoAccount("admin", "administrator", None, superuser=True),
)


@dataclass(frozen=True)
class DemoQueue:
    slug: str
    name: str
    purpose: str
    requester: str
    policies: tuple[tuple[str, str, str], ...]  # (code, title, description)


QUEUES = (
    DemoQueue(
        slug="reported-posts",
        name="Reported posts",
        purpose="Images in posts that users of Riverbank Social reported. Decide whether each one breaks the "
        "community rules: removed posts are hidden and the poster is told which rule applied; approved posts stay "
        "up and the reports are closed.",
        requester="Trust & Safety team, Riverbank Social (fictional demo requester)",
        policies=(
            ("graphic-violence", "Graphic violence", "Real injuries, blood or gore shown for shock or celebration."),
            ("adult-nudity", "Adult nudity and sexual content", "Explicit nudity or sexual activity."),
            ("hate-symbols", "Hateful imagery", "Symbols, slurs or caricatures that attack people for who they are."),
            ("self-harm", "Self-harm promotion", "Images that show or encourage self-harm or suicide. Removal also "
             "sends the poster support resources."),
            ("spam-scam", "Spam and scams", "Fake giveaways, phishing, or the same image posted in bulk."),
        ),
    ),
    DemoQueue(
        slug="marketplace-listings",
        name="Marketplace listings",
        purpose="Listing photos that automatic filters flagged before publication on Harbourline Market. Approve "
        "to publish the listing; remove to keep it off the site, and the seller is sent the rule you cite.",
        requester="Seller Trust team, Harbourline Market (fictional demo requester)",
        policies=(
            ("prohibited-items", "Prohibited items", "Weapons, drugs, live animals and other goods that may not be "
             "sold on the marketplace."),
            ("counterfeit", "Counterfeit goods", "Copies of branded products offered as genuine."),
            ("misleading-photo", "Misleading photo", "The photo does not show the item that is for sale."),
            ("off-platform-contact", "Off-platform contact", "Phone numbers, payment handles or links that move the "
             "sale off the marketplace."),
        ),
    ),
    DemoQueue(
        slug="specialist-violence",
        name="Graphic violence (specialist)",
        purpose="Uploads to Northgate Video that first-line reviewers or filters marked as graphic violence or "
        "self-harm. Reviewed only by staff trained for this material, under the strictest exposure limits; "
        "documentary and news footage may stay up.",
        requester="Safety Operations, Northgate Video (fictional demo requester)",
        policies=(
            ("graphic-violence", "Graphic violence", "Real-world violence, injury or death shown without a news or "
             "documentary purpose."),
            ("violent-extremism", "Violent extremism", "Praise, promotion or recruitment for violent attacks or "
             "groups."),
            ("self-harm", "Self-harm", "Depiction or encouragement of self-harm or suicide."),
            ("documentary-context", "Documentary or news context", "Cite when approving: the material documents "
             "events in the public interest."),
        ),
    ),
)


@dataclass(frozen=True)
class DemoItem:
    queue: str
    ref: str  # external id, as the requester's system would name it
    category: str = Category.UNSPECIFIED
    severity: int = Severity.NONE
    copy_of: str = ""  # ref of an earlier item whose picture this one re-uses
    edit: str = ""  # a demo.near_duplicate kind; empty with copy_of means the exact same file sent again
    fmt: str = "JPEG"


_C = Category
# Interleaved so every queue's order mixes calm and disturbing items, as a real stream would.
ITEMS = (
    DemoItem("reported-posts", "post-48213", _C.SPAM, 1),
    DemoItem("reported-posts", "post-48220", _C.VIOLENCE, 3),
    DemoItem("reported-posts", "post-48227", _C.OTHER, 0, fmt="PNG"),
    DemoItem("reported-posts", "post-48231", _C.HATE, 2),
    DemoItem("reported-posts", "post-48236", _C.SEXUAL, 2),
    DemoItem("reported-posts", "post-48240", _C.UNSPECIFIED, 0),
    DemoItem("reported-posts", "post-48244", _C.SELF_HARM, 3),
    DemoItem("reported-posts", "post-48251", _C.SPAM, 0, fmt="PNG"),
    DemoItem("reported-posts", "post-48258", _C.VIOLENCE, 2, copy_of="post-48220", edit="resized"),
    DemoItem("reported-posts", "post-48262", _C.HATE, 1),
    DemoItem("reported-posts", "post-48266", _C.SPAM, 1, copy_of="post-48213"),
    DemoItem("reported-posts", "post-48270", _C.OTHER, 1),
    DemoItem("reported-posts", "post-48275", _C.HATE, 2, copy_of="post-48231", edit="captioned"),
    DemoItem("reported-posts", "post-48281", _C.SEXUAL, 1),
    DemoItem("reported-posts", "post-48290", _C.VIOLENCE, 1, copy_of="post-48220", edit="mirrored"),
    DemoItem("reported-posts", "post-48296", _C.UNSPECIFIED, 0),
    DemoItem("marketplace-listings", "listing-7731", _C.SPAM, 1),
    DemoItem("marketplace-listings", "listing-7734", _C.OTHER, 0, fmt="PNG"),
    DemoItem("marketplace-listings", "listing-7740", _C.VIOLENCE, 2),
    DemoItem("marketplace-listings", "listing-7742", _C.UNSPECIFIED, 0),
    DemoItem("marketplace-listings", "listing-7748", _C.SPAM, 1, copy_of="listing-7731", edit="reencoded"),
    DemoItem("marketplace-listings", "listing-7751", _C.SEXUAL, 1),
    DemoItem("marketplace-listings", "listing-7755", _C.OTHER, 1),
    DemoItem("marketplace-listings", "listing-7760", _C.SPAM, 0, copy_of="post-48251", edit="cropped"),
    DemoItem("marketplace-listings", "listing-7763", _C.UNSPECIFIED, 0),
    DemoItem("marketplace-listings", "listing-7769", _C.OTHER, 1, copy_of="listing-7734"),
    DemoItem("marketplace-listings", "listing-7772", _C.HATE, 2),
    DemoItem("marketplace-listings", "listing-7778", _C.SPAM, 1, copy_of="listing-7731", edit="brighter"),
    DemoItem("specialist-violence", "clip-90412", _C.VIOLENCE, 3),
    DemoItem("specialist-violence", "clip-90415", _C.VIOLENCE, 2),
    DemoItem("specialist-violence", "clip-90419", _C.OTHER, 0),
    DemoItem("specialist-violence", "clip-90423", _C.SELF_HARM, 3),
    DemoItem("specialist-violence", "clip-90427", _C.VIOLENCE, 3, copy_of="clip-90412", edit="grayscale"),
    DemoItem("specialist-violence", "clip-90430", _C.VIOLENCE, 1),
    DemoItem("specialist-violence", "clip-90436", _C.SELF_HARM, 2),
    DemoItem("specialist-violence", "clip-90441", _C.UNSPECIFIED, 0, fmt="PNG"),
    DemoItem("specialist-violence", "clip-90447", _C.VIOLENCE, 3, copy_of="post-48220", edit="cropped"),
    DemoItem("specialist-violence", "clip-90452", _C.VIOLENCE, 2, copy_of="clip-90415"),
    DemoItem("specialist-violence", "clip-90458", _C.VIOLENCE, 3),
    DemoItem("specialist-violence", "clip-90463", _C.OTHER, 1),
    # Moving items (issue 25): synthetic clips and animations made at seed time, reviewed whole.
    DemoItem("specialist-violence", "clip-90470", _C.VIOLENCE, 3, fmt="MP4"),
    DemoItem("specialist-violence", "clip-90474", _C.VIOLENCE, 2, fmt="MP4"),
    DemoItem("specialist-violence", "clip-90478", _C.OTHER, 1, fmt="ANIMATED_GIF"),
)


class Command(BaseCommand):
    url = DEMO_URL
    help = "Create the demo accounts, queues and synthetic items (idempotent: run it as often as you like)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reset-passwords", action="store_true",
                            help="Give the demo accounts new random passwords and rewrite the logins file.")
        parser.add_argument("--host", default="127.0.0.1", help="The host the server listens on (make run: HOST).")
        parser.add_argument("--port", type=int, default=8000, help="Its port (make run: PORT), printed in the URL.")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        port = int(options["port"])
        if not 1 <= port <= 65535:
            raise CommandError(f"--port must be between 1 and 65535, not {port}.")
        self.url = demo_url(str(options["host"]), port)
        logins = self._ensure_accounts(reset=bool(options["reset_passwords"]))
        queues = self._ensure_queues()
        with quiet_task_logs(enabled=int(options["verbosity"]) < 2):
            summary = self._ensure_items(queues)
        # Teams and weeks of exposure, breaks and check-ins, so the lead's live view and the OH reports show
        # something (demo/wellbeing.py; idempotent like the rest).
        wellbeing_summary = seed_wellbeing_demo()
        self._print_logins(logins)
        self.stdout.write(f"{summary}. {wellbeing_summary} ({time.monotonic() - started:.1f} s).")

    # --- accounts -------------------------------------------------------------------------------------------

    def _ensure_accounts(self, *, reset: bool) -> dict[str, str | None]:
        """Create missing demo accounts; return username -> password (None when not known to this command)."""
        path = _logins_path()
        known = _read_logins(path)
        passwords: dict[str, str | None] = {}
        changed = False
        for account in ACCOUNTS:
            user, created = User.objects.get_or_create(username=account.username)
            password = known.get(account.username)
            if created or reset:
                # A recreated database reuses the password already in the file, so the notes people made stay valid.
                if reset or password is None:
                    password = secrets.token_urlsafe(12)
                user.set_password(password)
                user.is_superuser = user.is_staff = account.superuser
                user.save()
                changed = changed or password != known.get(account.username)
            elif password is not None and not user.check_password(password):
                password = None  # changed since (in the admin, say): the file's copy would only mislead
            if account.group is not None:
                user.groups.add(Group.objects.get(name=account.group.value))
            passwords[account.username] = password
        stale_url = path.exists() and f"# Sign in at {self.url}\n" not in path.read_text(encoding="utf-8")
        if changed or stale_url or (not path.exists() and any(passwords.values())):
            _write_logins(path, {name: pw for name, pw in passwords.items() if pw is not None}, url=self.url)
        return passwords

    def _print_logins(self, passwords: dict[str, str | None]) -> None:
        roles = {account.username: account.role for account in ACCOUNTS}
        lines = [f"{'username':<11} {'role':<21} password", f"{'-' * 11} {'-' * 21} {'-' * 20}"]
        for username, password in passwords.items():
            shown = password or "(not known here: set outside seed_demo; --reset-passwords makes new ones)"
            lines.append(f"{username:<11} {roles[username]:<21} {shown}")
        self.stdout.write("")
        self.stdout.write(self.style.MIGRATE_HEADING(f"Veil demo: open {self.url} and sign in as"))
        for line in lines:
            self.stdout.write(f"  {line}")
        path = _logins_path()
        if path.exists():
            self.stdout.write(f"  (saved in {path}, readable only by you)")
        self.stdout.write(f"  API: {REQUESTER_ACCOUNT} submits to the demo queues; get its token with "
                          f"`manage.py create_api_token {REQUESTER_ACCOUNT}`.")
        self.stdout.write("")

    # --- queues ---------------------------------------------------------------------------------------------

    def _ensure_queues(self) -> dict[str, Queue]:
        requester, created = User.objects.get_or_create(username=REQUESTER_ACCOUNT)
        if created:
            requester.set_unusable_password()
            requester.save(update_fields=["password"])
        requester.groups.add(Group.objects.get(name=Role.REQUESTER.value))
        queues: dict[str, Queue] = {}
        for spec in QUEUES:
            with transaction.atomic():
                queue, created = Queue.objects.get_or_create(
                    slug=spec.slug, defaults={"name": spec.name, "purpose": spec.purpose, "requester": spec.requester}
                )
                if created:
                    Policy.objects.bulk_create(
                        Policy(queue=queue, code=code, title=title, description=description, position=position)
                        for position, (code, title, description) in enumerate(spec.policies)
                    )
                    self.stdout.write(f"Created queue {spec.slug} with {len(spec.policies)} policies.")
                queue.submitters.add(requester)
            queues[spec.slug] = queue
        return queues

    # --- items ----------------------------------------------------------------------------------------------

    def _ensure_items(self, queues: dict[str, Queue]) -> str:
        if ContentItem.objects.filter(queue__in=queues.values()).exists():
            count = ContentItem.objects.filter(queue__in=queues.values()).count()
            return f"Demo items already present ({count} in the demo queues); none added"
        requester = User.objects.get(username=REQUESTER_ACCOUNT)
        pictures: dict[str, tuple[Image.Image, bytes]] = {}  # ref -> (image, the bytes sent)
        number = 0
        near, exact = 0, 0
        made: list[int] = []
        for spec in ITEMS:
            if spec.copy_of and not spec.edit:
                data = pictures[spec.copy_of][1]
                exact += 1
            elif spec.copy_of:
                data = demo.encode(demo.near_duplicate(pictures[spec.copy_of][0], spec.edit), spec.fmt)
                near += 1
            elif spec.fmt in ("MP4", "ANIMATED_GIF"):
                number += 1
                label = f"SYNTHETIC DEMO #{number} · severity {spec.severity} · {spec.category.replace('_', '-')}"
                data = demo.demo_clip(zlib.crc32(spec.ref.encode()), label=label,
                                      animated_gif=spec.fmt == "ANIMATED_GIF")
            else:
                number += 1
                label = f"SYNTHETIC DEMO #{number} · severity {spec.severity} · {spec.category.replace('_', '-')}"
                image = demo.demo_image(zlib.crc32(spec.ref.encode()), label=label)
                data = demo.encode(image, spec.fmt)
                pictures[spec.ref] = (image, data)
            extension = {"JPEG": "jpg", "MP4": "mp4", "ANIMATED_GIF": "gif"}.get(spec.fmt, spec.fmt.lower())
            upload = SimpleUploadedFile(f"{spec.ref}.{extension}", data, content_type=f"image/{extension}")
            # One transaction per item: processing finishes before the commit, so the enqueued task (eager here, or
            # a worker's) finds the item ready and does nothing, and an interrupted run leaves no half-made item.
            with transaction.atomic():
                item = services.item_ingest(queue=queues[spec.queue], upload=upload, submitted_by=requester,
                                            external_id=spec.ref, category=spec.category, severity=spec.severity)
                services.item_process(item_id=item.pk)
            made.append(item.pk)
        placed = ContentItem.objects.filter(pk__in=made)
        ready = placed.filter(status=ContentItem.Status.READY).count()
        copies = placed.filter(status=ContentItem.Status.CLUSTERED).count()
        failed = len(made) - ready - copies
        return (f"Seeded {len(made)} synthetic items in {len(queues)} queues ({near} near-duplicates, {exact} exact "
                f"re-submissions): {ready} ready for review, {copies} recognised as copies waiting with their "
                "picture" + (f", {failed} not ready" if failed else ""))


@contextmanager
def quiet_task_logs(*, enabled: bool) -> Iterator[None]:
    """Eager Celery logs a line per task and kombu warns about the in-memory broker: noise in `make run` output."""
    loggers = [logging.getLogger(name) for name in ("celery.app.trace", "kombu.connection")] if enabled else []
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _logins_path() -> Path:
    return Path(settings.DATA_DIR) / LOGINS_FILE


def _read_logins(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    found: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and not line.startswith("#") and fields[0] != "username":
            found[fields[0]] = fields[2]
    return found


def _write_logins(path: Path, passwords: dict[str, str], *, url: str = DEMO_URL) -> None:
    roles = {account.username: account.role for account in ACCOUNTS}
    lines = [
        "# Veil demo logins, written by `manage.py seed_demo` (new ones: --reset-passwords). Keep this file private.",
        f"# Sign in at {url}",
        f"{'username':<11} {'role':<21} password",
        *(f"{name:<11} {roles[name]:<21} {password}" for name, password in passwords.items()),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 from the start (no window where it is world-readable), then swapped in atomically.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fp:
            fp.write("\n".join(lines) + "\n")
        temporary.chmod(0o600)  # in case a stale temporary file existed with wider permissions
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
