"""Issue 22, point 8 (the API and the data folder): uploads rate-limited per account, JSON errors for unknown API
paths and malformed multipart bodies (through a real daphne), 401/429 and the /h/, /m/ refusals in the OpenAPI
schema, and the SQLite data folder 0700 with its files 0600."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from intake.models import ContentItem
from tests.helpers.factories import image_bytes, make_queue, make_user
from tests.helpers.hma import client_for, token_of
from tests.helpers.livesrv import ROOT


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> Any:
    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db
def test_uploads_are_rate_limited_per_account(requester, settings) -> None:
    settings.VEIL_INTEGRATION_RATE_PER_MINUTE = 2
    other = make_user("req2", "requester")
    make_queue(slug="reports").submitters.add(requester, other)

    def upload(user, seed: int):
        return client_for(user).post("/api/v1/items/", {"file": SimpleUploadedFile("x.png", image_bytes(seed)),
                                                        "queue": "reports"}, format="multipart")

    assert [upload(requester, n).status_code for n in range(2)] == [201, 201]
    limited = upload(requester, 3)
    assert limited.status_code == 429
    assert limited.json()["error"] == "rate_limited" and "Retry-After" in limited
    assert ContentItem.objects.count() == 2  # the refused upload stored nothing
    assert upload(other, 4).status_code == 201  # per account: another requester is not held up


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), [
    ("get", "/api/v1/nope/"), ("get", "/api/v1/items/abc/"), ("post", "/api/v1/items/1/nothing/"),
    ("delete", "/api/v1/"), ("get", "/api/v1/items"),
])
def test_unknown_api_paths_answer_a_json_404(requester, method: str, path: str) -> None:
    for client in (client_for(requester), Client(enforce_csrf_checks=True)):
        response = getattr(client, method)(path)
        assert response.status_code == 404, (path, response.content[:200])
        assert response["Content-Type"].startswith("application/json")
        body = response.json()
        assert body["error"] == "not_found" and "endpoint" in body["detail"]
    if path == "/api/v1/items":
        assert "/api/v1/items/" in body["detail"]  # says what was probably meant


@pytest.mark.django_db(transaction=True)
def test_a_malformed_multipart_body_gets_a_json_400_from_a_real_daphne(live_daphne: str) -> None:
    requester = make_user("req", "requester")
    make_queue(slug="reports").submitters.add(requester)
    headers = {"Authorization": f"Token {token_of(requester)}"}
    bodies = {
        "no boundary": ("multipart/form-data", b"--x\r\nContent-Disposition: form-data; name=queue\r\n\r\nreports\r\n"),
        "wrong boundary": ("multipart/form-data; boundary=abc", b"--zzz\r\ngarbage\r\n--zzz--\r\n"),
        "cut short": ("multipart/form-data; boundary=abc",
                      b'--abc\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n\x89PNG'),
    }
    for name, (content_type, body) in bodies.items():
        for path in ("/api/v1/items/", "/h/hash"):
            response = requests.post(live_daphne + path, data=body, timeout=10,
                                     headers={**headers, "Content-Type": content_type})
            assert response.status_code == 400, (name, path, response.status_code, response.text[:200])
            assert response.headers["Content-Type"].startswith("application/json"), (name, path)
            answer = response.json()
            assert answer["error"] and len(answer["detail"]) > 10, (name, path, answer)


@pytest.mark.django_db
def test_the_schema_documents_401_429_and_the_hma_refusals(moderator) -> None:
    client = Client()
    client.force_login(moderator)
    schema = client.get("/api/schema/?format=json").json()
    paths = schema["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert "401" in operation["responses"], (path, method)
    for path, method in [("/api/v1/items/", "post"), ("/api/v1/items/async/", "post"), ("/h/hash", "get"),
                         ("/h/hash", "post"), ("/m/lookup", "get"), ("/m/raw_lookup", "get")]:
        too_many = paths[path][method]["responses"]["429"]
        assert "Retry-After" in too_many["headers"], path
        assert too_many["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ApiError"}
    for method in ("get", "post"):
        assert {"400", "403", "413", "502"} <= set(paths["/h/hash"][method]["responses"])
        assert {"400", "403", "413", "502"} <= set(paths["/m/lookup"][method]["responses"])
    assert schema["components"]["schemas"]["ApiError"]["required"] == ["error", "detail"]


def test_the_sqlite_data_folder_is_0700_and_its_files_0600(tmp_path: Path) -> None:
    """A fresh data folder, then an old one made with loose modes: both end private once Veil has started."""
    fresh, old = tmp_path / "fresh", tmp_path / "old"
    old.mkdir(mode=0o755)
    (old / "veil.sqlite3").touch(mode=0o644)
    (old / "veil.sqlite3").chmod(0o644)
    old.chmod(0o755)
    # Modes are read while the connection is open: SQLite removes the -wal and -shm files when the last one closes.
    script = ("import django, json, os, stat, sys; django.setup(); from django.db import connection; "
              "connection.cursor().execute('CREATE TABLE t (x int)'); d = sys.argv[1]; "
              "print(json.dumps({n: stat.S_IMODE(os.stat(os.path.join(d, n)).st_mode) for n in os.listdir(d)}))")
    for data_dir in (fresh, old):
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "VEIL_DATA_DIR")}
        env.update({"VEIL_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "config.settings",
                    "VEIL_SECRET_KEY": "x" * 40})
        done = subprocess.run([sys.executable, "-c", script, str(data_dir)], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700, data_dir
        modes = {name: mode for name, mode in json.loads(done.stdout.strip().splitlines()[-1]).items()
                 if name.startswith("veil.sqlite3")}
        assert {"veil.sqlite3", "veil.sqlite3-wal", "veil.sqlite3-shm"} <= set(modes), modes
        assert set(modes.values()) == {0o600}, modes



@pytest.mark.django_db
@pytest.mark.parametrize(("role", "path", "header"), [
    ("moderator", "/api/v1/queues/", "HTTP_AUTHORIZATION"),
    ("requester", "/m/lookup?signal_type=pdq&signal=" + "0" * 64, "HTTP_AUTHORIZATION"),
    ("requester", "/m/lookup?signal_type=pdq&signal=" + "0" * 64, "HTTP_X_API_KEY"),
])
def test_tokens_are_checked_by_the_compiled_read_as_drf_checks_them(request, role, path, header) -> None:
    """core.token_auth reads the token with its user in one compiled statement. A valid token is let in; an unknown
    one and the token of a deactivated account are refused with 401 and DRF's words (in French for a French
    reader), on the moderator API and on an integration endpoint, with either header an integration accepts."""
    user = request.getfixturevalue(role)

    def asked(key: str, **extra: str) -> Any:
        meta: dict[str, Any] = {header: f"Token {key}" if header == "HTTP_AUTHORIZATION" else key, **extra}
        return Client().get(path, **meta)

    key = token_of(user)
    assert asked(key).status_code == 200
    unknown = asked("f" * 40)
    assert unknown.status_code == 401 and "Invalid token." in unknown.content.decode()
    assert "Jeton non valide." in asked("f" * 40, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    user.is_active = False
    user.save(update_fields=["is_active"])
    refused = asked(key)
    assert refused.status_code == 401 and "User inactive or deleted." in refused.content.decode()


@pytest.mark.django_db
def test_the_token_read_loads_the_users_roles_as_has_role_reads_them(moderator, lead, health, requester) -> None:
    """The token's read brings the user's roles (core.roles.role_columns, from the same groups has_role reads), so a
    request's role checks read nothing more; a role taken away counts from the next request."""
    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from core.roles import Role, has_role, roles_of
    from core.token_auth import CompiledTokenAuthentication

    both = make_user("both", "moderator")
    both.groups.add(Group.objects.get_or_create(name="team_lead")[0])
    for user in (moderator, lead, health, requester, both):
        loaded, _token = CompiledTokenAuthentication().authenticate_credentials(token_of(user))
        with CaptureQueriesContext(connection) as queries:
            checked = roles_of(loaded)
        assert len(queries) == 0
        assert checked == roles_of(User.objects.get(pk=user.pk)) and checked  # read by has_role itself
    both.groups.remove(Group.objects.get(name="team_lead"))
    loaded, _token = CompiledTokenAuthentication().authenticate_credentials(token_of(both))
    assert has_role(loaded, Role.MODERATOR) and not has_role(loaded, Role.TEAM_LEAD)
