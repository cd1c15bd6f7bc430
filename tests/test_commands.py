"""Management commands: seed_demo (idempotent demo data), import_images (folder import), create_api_token."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core.models import AuditEvent
from demo import content as demo
from intake import media
from intake.models import Category, ContentItem
from review.models import Policy, Queue
from tests.helpers.demo import seed
from tests.helpers.factories import image_bytes, make_queue, make_user, upload

# --- demo.content (no database) ------------------------------------------------------------------------------


def test_demo_images_are_deterministic_and_distinct_per_seed():
    label = "SYNTHETIC DEMO #1 · severity 2 · violence"
    first = demo.encode(demo.demo_image(7, label=label, size=(320, 240)), "PNG")
    again = demo.encode(demo.demo_image(7, label=label, size=(320, 240)), "PNG")
    other = demo.demo_image(8, label=label, size=(320, 240))
    assert first == again
    assert other.size == (320, 240) and other.mode == "RGB"
    a = media.make_derivatives(io.BytesIO(first), max_pixels=10**7)
    b = media.make_derivatives(io.BytesIO(demo.encode(other)), max_pixels=10**7)
    assert media.hamming(a.phash, b.phash) > 12


@pytest.mark.parametrize("kind", demo.NEAR_DUPLICATE_KINDS)
def test_near_duplicates_are_valid_images(kind):
    original = demo.demo_image(3, label="SYNTHETIC DEMO #3 · severity 1 · spam", size=(400, 300))
    copy = demo.near_duplicate(original, kind)
    data = demo.encode(copy)
    assert media.inspect_image(io.BytesIO(data), size=len(data), max_bytes=10**7, max_pixels=10**7,
                               max_frames=1).format == "JPEG"
    if kind in {"resized", "reencoded", "brighter", "grayscale"}:
        a = media.make_derivatives(io.BytesIO(demo.encode(original)), max_pixels=10**7)
        b = media.make_derivatives(io.BytesIO(data), max_pixels=10**7)
        assert media.hamming(a.phash, b.phash) <= 8


def test_near_duplicate_rejects_unknown_kind():
    with pytest.raises(ValueError, match="rotated"):
        demo.near_duplicate(Image.new("RGB", (64, 64)), "rotated")


# --- seed_demo -----------------------------------------------------------------------------------------------------


def logins(path: Path) -> dict[str, str]:
    rows = [line.split() for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return {row[0]: row[2] for row in rows if row[0] != "username"}


@pytest.mark.django_db
@pytest.mark.slow
def test_seed_demo_builds_the_demo_and_a_second_run_changes_nothing(data_dir):
    output = seed()

    groups = {u.username: set(u.groups.values_list("name", flat=True)) for u in User.objects.all()}
    assert groups["moderator"] == {"moderator"}
    assert groups["lead"] == {"team_lead"}
    assert groups["health"] == {"occupational_health"}
    assert groups["demo-requester"] == {"requester"}
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert not User.objects.get(username="demo-requester").has_usable_password()

    path = data_dir / "demo-logins.txt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    passwords = logins(path)
    assert set(passwords) == {"moderator", "lead", "health", "admin"}
    assert User.objects.get(username="moderator").check_password(passwords["moderator"])
    assert "http://127.0.0.1:8000/" in output
    assert all(password in output for password in passwords.values())

    queues = Queue.objects.filter(slug__in=["reported-posts", "marketplace-listings", "specialist-violence"])
    assert queues.count() == 3
    requester = User.objects.get(username="demo-requester")
    for queue in queues:
        assert len(queue.purpose) > 40 and "fictional" in queue.requester
        assert 3 <= queue.policies.count() <= 5
        assert all(policy.title and policy.description for policy in queue.policies.all())
        assert queue.submitters.filter(pk=requester.pk).exists()

    items = list(ContentItem.objects.filter(queue__in=queues))
    assert 36 <= len(items) <= 45
    # Near-duplicates and re-submissions are recognised at ingest and wait with their picture (one review decides
    # all); everything else is ready for review.
    statuses = [item.status for item in items]
    assert set(statuses) == {ContentItem.Status.READY, ContentItem.Status.CLUSTERED}
    assert statuses.count(ContentItem.Status.CLUSTERED) >= 5
    for item in items:
        assert item.preview.name and item.display.name
        assert default_storage.exists(item.preview.name) and default_storage.exists(item.display.name)
    assert {item.severity for item in items} == {0, 1, 2, 3}
    assert len({item.category for item in items}) >= 5
    assert all(item.submitted_by_id == requester.pk for item in items)
    # A few synthetic clips and animations, made at seed time, reviewed whole (issue 25).
    assert {item.kind for item in items} == {"still", "animation", "video"}
    assert all(item.motion.keyframes and item.frame_count > 1 for item in items if item.kind != "still")
    by_ref = {item.external_id: item for item in items}
    original, resized = by_ref["post-48220"], by_ref["post-48258"]  # a resized re-share of the same picture
    assert original.sha256 != resized.sha256
    assert original.phash is not None and resized.phash is not None
    assert media.hamming(original.phash, resized.phash) <= 8
    assert resized.cluster_id == original.cluster_id and resized.status == ContentItem.Status.CLUSTERED
    shas = [item.sha256 for item in items]
    assert len(shas) - len(set(shas)) >= 2  # exact re-submissions
    assert f"Seeded {len(items)} synthetic items" in output

    # Teams of different sizes with weeks of history, so the lead's view and the OH reports show something.
    from wellbeing.models import Shift, Team

    sizes = {team.name: team.memberships.count() for team in Team.objects.all()}
    assert sorted(sizes.values()) == [4, 5, 6, 8]
    riverbank = Team.objects.get(memberships__user__username="moderator")
    assert riverbank.leads.filter(username="lead").exists()
    assert all(team.health_staff.filter(username="health").exists() for team in Team.objects.all())
    assert Shift.objects.filter(reviewer__username="moderator").count() >= 20  # several weeks, all closed
    assert not Shift.objects.filter(reviewer__username="moderator", ended_at__isnull=True).exists()
    assert Shift.objects.filter(reviewer__team_membership__team=riverbank, ended_at__isnull=True).count() >= 3
    assert "Wellbeing demo: 4 teams" in output
    shifts = Shift.objects.count()

    counts = (User.objects.count(), Queue.objects.count(), Policy.objects.count(), ContentItem.objects.count(),
              AuditEvent.objects.count())
    hashes = dict(User.objects.values_list("username", "password"))
    again = seed()
    assert (User.objects.count(), Queue.objects.count(), Policy.objects.count(), ContentItem.objects.count(),
            AuditEvent.objects.count()) == counts
    assert dict(User.objects.values_list("username", "password")) == hashes
    assert logins(path) == passwords
    assert all(password in again for password in passwords.values())
    assert "none added" in again
    assert Shift.objects.count() == shifts and "0 past shifts added, 0 people put on shift now" in again


@pytest.mark.django_db
def test_seed_demo_reset_passwords_gives_new_ones(data_dir, few_items):
    seed()
    path = data_dir / "demo-logins.txt"
    before = logins(path)
    output = seed("--reset-passwords")
    after = logins(path)
    assert set(after) == set(before)
    assert all(after[name] != before[name] for name in after)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lead = User.objects.get(username="lead")
    assert lead.check_password(after["lead"]) and not lead.check_password(before["lead"])
    assert after["lead"] in output


@pytest.mark.django_db
def test_seed_demo_keeps_file_passwords_for_a_new_database_and_never_guesses(data_dir, few_items):
    seed()
    path = data_dir / "demo-logins.txt"
    passwords = logins(path)
    User.objects.filter(username__in=passwords).delete()  # as if the database had been recreated
    seed()
    assert User.objects.get(username="health").check_password(passwords["health"])
    assert logins(path) == passwords

    path.unlink()
    output = seed()
    assert not path.exists()
    assert passwords["health"] not in output and "not known here" in output
    assert User.objects.get(username="health").check_password(passwords["health"])


@pytest.mark.django_db
def test_seed_demo_does_not_show_a_password_changed_since(data_dir, few_items):
    seed()
    passwords = logins(data_dir / "demo-logins.txt")
    moderator = User.objects.get(username="moderator")
    moderator.set_password("chosen by the moderator herself")
    moderator.save()
    output = seed()
    assert passwords["moderator"] not in output
    assert passwords["lead"] in output


# --- import_images -------------------------------------------------------------------------------------------------


def picture(seed_: int, fmt: str = "JPEG") -> bytes:
    return demo.encode(demo.demo_image(seed_, label=f"SYNTHETIC DEMO #{seed_}", size=(240, 180)), fmt)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "incoming"
    root.mkdir()
    (root / "a.jpg").write_bytes(picture(1))
    (root / "b.png").write_bytes(picture(2, "PNG"))
    (root / "c.webp").write_bytes(picture(3, "WEBP"))
    (root / "x.jpg").write_text("not a picture, whatever the name says\n")
    (root / "drawing.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    (root / "empty.png").write_bytes(b"")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "nested").mkdir()
    (root / "nested" / "d.jpg").write_bytes(picture(4))
    return root


def import_images(*args: str) -> str:
    out = io.StringIO()
    call_command("import_images", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_import_images_imports_good_files_and_reports_refusals(folder, django_capture_on_commit_callbacks):
    queue = make_queue(slug="imports")
    # Inside the test transaction nothing commits, so processing (eager Celery, on commit) runs at the block's end.
    with django_capture_on_commit_callbacks(execute=True):
        output = import_images(str(folder), "--queue", "imports", "--severity", "2", "--category", "violence")

    assert "imported 3 (0 ready, 3 still processing (a worker finishes them)), already present 0, refused 3" in output
    assert "x.jpg: unsupported_format" in output
    assert "drawing.svg: svg_refused" in output
    assert "empty.png: empty_file" in output
    assert "1 subfolder(s) (use --recursive)" in output
    items = ContentItem.objects.filter(queue=queue)
    assert sorted(items.values_list("external_id", flat=True)) == ["a.jpg", "b.png", "c.webp"]
    assert {(i.status, i.severity, i.category, i.submitted_by_id) for i in items} == {
        (ContentItem.Status.READY, 2, Category.VIOLENCE, None)
    }

    output = import_images(str(folder), "--queue", "imports")
    assert "imported 0, already present 3, refused 3" in output
    assert items.count() == 3

    output = import_images(str(folder), "--queue", "imports", "--recursive")
    assert "imported 1" in output and "already present 3" in output
    assert items.filter(external_id="nested/d.jpg").exists()


@pytest.mark.django_db
def test_import_images_skips_a_copy_already_in_the_queue_under_another_name(tmp_path):
    make_queue(slug="imports")
    (tmp_path / "one.jpg").write_bytes(picture(5))
    (tmp_path / "same-again.jpg").write_bytes(picture(5))
    output = import_images(str(tmp_path), "--queue", "imports")
    assert "imported 1" in output and "already present 1" in output


@pytest.mark.django_db
def test_import_images_as_user(folder):
    make_queue(slug="imports")
    submitter = make_user("ingest-bot", "requester")
    import_images(str(folder), "--queue", "imports", "--as", "ingest-bot")
    assert set(ContentItem.objects.values_list("submitted_by", flat=True)) == {submitter.pk}


@pytest.mark.django_db
def test_import_images_refuses_bad_arguments(folder):
    make_queue(slug="imports")
    with pytest.raises(CommandError, match="no queue 'missing'"):
        import_images(str(folder), "--queue", "missing")
    with pytest.raises(CommandError, match="not a directory"):
        import_images(str(folder / "a.jpg"), "--queue", "imports")
    with pytest.raises(CommandError, match="not a directory"):
        import_images(str(folder / "nowhere"), "--queue", "imports")
    with pytest.raises(CommandError, match="no user 'ghost'"):
        import_images(str(folder), "--queue", "imports", "--as", "ghost")
    assert not ContentItem.objects.exists()


# --- create_api_token ----------------------------------------------------------------------------------------------


def create_token(*args: str) -> str:
    out = io.StringIO()
    call_command("create_api_token", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_create_api_token_makes_a_requester_whose_token_can_submit():
    output = create_token("acme-ingest", "--create")
    key = output.strip()
    assert output == f"{key}\n"  # the key alone, so it can be piped
    user = User.objects.get(username="acme-ingest")
    assert Token.objects.get(user=user).key == key
    assert user.groups.filter(name="requester").exists()
    assert not user.has_usable_password()

    event = AuditEvent.objects.get(action=AuditEvent.Action.TOKEN_CREATED)
    assert event.data["user"] == "acme-ingest" and event.actor is None
    assert key not in json.dumps(event.data)

    queue = make_queue(slug="reports")
    queue.submitters.add(user)
    client = APIClient()
    response = client.post("/api/v1/items/", {"file": upload(image_bytes(1)), "queue": "reports"}, format="multipart",
                           HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 201, response.content
    assert ContentItem.objects.get(pk=response.json()["id"]).submitted_by == user


@pytest.mark.django_db
def test_create_api_token_for_an_unknown_user_needs_create():
    with pytest.raises(CommandError, match=r"no user 'nobody'.*--create"):
        create_token("nobody")
    assert not User.objects.filter(username="nobody").exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_create_api_token_reuses_the_key_and_rotate_replaces_it():
    make_user("partner", None)
    key = create_token("partner").strip()
    assert create_token("partner").strip() == key
    rotated = create_token("partner", "--rotate").strip()
    assert rotated != key
    assert not Token.objects.filter(key=key).exists()
    assert Token.objects.get(user__username="partner").key == rotated
    events = AuditEvent.objects.filter(action=AuditEvent.Action.TOKEN_CREATED)
    assert sorted(e.data["outcome"] for e in events) == ["created", "existing key shown", "rotated"]
    assert not any(k in json.dumps(e.data) for e in events for k in (key, rotated))

    client = APIClient()
    response = client.get("/api/v1/queues/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code in (401, 403)
