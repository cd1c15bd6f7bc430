"""compose/: the docker-compose file renders (no Docker engine needed for `config`) and the image build context
never carries the embedded database, its secret key or a virtualenv."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "compose" / "docker-compose.yml"
DOCKERFILE = ROOT / "compose" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
REQUIRE_SERVICES = os.environ.get("VEIL_REQUIRE_SERVICES") == "1"
SECRET = "compose-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"


def compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=60)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def render(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    command = compose_command()
    if command is None:
        reason = "neither docker-compose nor the docker compose plugin is installed (apt-get install docker-compose)"
        if REQUIRE_SERVICES:
            pytest.fail(f"VEIL_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    # Only the defaults written in the file: no VEIL_* from the caller, and an empty env file instead of any
    # compose/.env a developer keeps.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VEIL_")}
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    return subprocess.run(
        [*command, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = render(tmp_path_factory.mktemp("compose"), VEIL_SECRET_KEY=SECRET)
    assert result.returncode == 0, result.stderr
    rendered: dict[str, Any] = yaml.safe_load(result.stdout)
    return rendered


def _healthcheck(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else str(test)


def _volume_targets(service: dict[str, Any]) -> dict[str, str]:
    """source -> target, from v1's "src:dst:mode" strings or v2's long form."""
    targets = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        targets[source] = target
    return targets


def _published(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(host ip, host port, container port) for each published port, from either rendering."""
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, str):
            host_ip, published, target = port.split("/")[0].rsplit(":", 2)
        else:
            host_ip, published, target = port.get("host_ip", ""), str(port["published"]), str(port["target"])
        ports.append((host_ip, published, target))
    return ports


def test_six_services(config: dict[str, Any]) -> None:
    assert set(config["services"]) == {"postgres", "redis", "proxy", "web", "worker", "beat"}
    assert config["services"]["proxy"]["image"].startswith("nginx:")
    assert config["services"]["postgres"]["image"] == "postgres:16"
    assert config["services"]["redis"]["image"] == "redis:7"


def test_web_migrates_then_serves_several_daphne_processes_and_worker_runs_celery(config: dict[str, Any]) -> None:
    web = " ".join(config["services"]["web"]["command"])
    assert "manage.py migrate" in web
    assert web.index("migrate") < web.index("config.stack")
    # Several web processes on one socket (config/stack.py), no worker or beat of their own: those are services.
    assert re.search(r"python -m config\.stack --host 0\.0\.0\.0 --port 8000 --web \d+ --no-worker --no-beat", web)
    assert config["services"]["web"]["environment"]["VEIL_BEHIND_PROXY"] in {"1", 1}
    worker = config["services"]["worker"]["command"]
    assert worker[:4] == ["celery", "-A", "config", "worker"]
    # One scheduler beside the workers: check-ins past their retention are deleted even in the compose stack.
    beat = config["services"]["beat"]["command"]
    assert beat[:4] == ["celery", "-A", "config", "beat"] and "-B" not in worker
    for service in ("web", "worker", "beat"):
        build = config["services"][service]["build"]
        assert Path(build["context"]).resolve() == ROOT
        assert build["dockerfile"] == "compose/Dockerfile"


def test_databases_have_healthchecks_and_apps_wait_for_them(config: dict[str, Any]) -> None:
    services = config["services"]
    assert "pg_isready" in _healthcheck(services["postgres"])
    assert "redis-cli ping" in _healthcheck(services["redis"])
    assert services["proxy"]["depends_on"]["web"]["condition"] == "service_healthy"
    for service in ("web", "worker", "beat"):
        depends = services[service]["depends_on"]
        assert {name: depends[name]["condition"] for name in ("postgres", "redis")} == {
            "postgres": "service_healthy",
            "redis": "service_healthy",
        }


def test_environment_points_at_the_real_stack(config: dict[str, Any]) -> None:
    for service in ("web", "worker"):
        env = config["services"][service]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:6379")
        assert env["VEIL_SECRET_KEY"] == SECRET
        assert env["VEIL_ALLOWED_HOSTS"]
        assert env["VEIL_DATA_DIR"]
        assert str(env["VEIL_STATIC_FROM_FINDERS"]) == "0"


def test_web_and_worker_share_the_media_volume(config: dict[str, Any]) -> None:
    media_root = config["services"]["web"]["environment"]["VEIL_MEDIA_ROOT"]
    assert config["services"]["worker"]["environment"]["VEIL_MEDIA_ROOT"] == media_root
    web = _volume_targets(config["services"]["web"])
    worker = _volume_targets(config["services"]["worker"])
    sources = [source for source, target in web.items() if target == media_root]
    assert sources, f"web mounts nothing at {media_root}: {web}"
    assert worker.get(sources[0]) == media_root, worker
    assert sources[0] in config["volumes"], "the media volume must be a named volume"
    assert "/var/lib/postgresql/data" in _volume_targets(config["services"]["postgres"]).values()


def test_only_the_proxy_is_published_on_loopback_by_default(config: dict[str, Any]) -> None:
    assert _published(config["services"]["proxy"]) == [("127.0.0.1", "8000", "8080")]
    for service in ("postgres", "redis", "web", "worker", "beat"):
        assert not config["services"][service].get("ports"), service


def test_the_proxy_limits_bodies_upgrades_websockets_and_serves_static_files(config: dict[str, Any]) -> None:
    conf = (ROOT / "compose" / "nginx.conf").read_text()
    limit = re.search(r"client_max_body_size (\d+)m;", conf)
    assert limit and int(limit.group(1)) <= 36  # a little over VEIL_MAX_REQUEST_BYTES' default (34.3 MiB)
    assert "proxy_set_header Upgrade $http_upgrade;" in conf and "location /ws/" in conf
    assert "alias /srv/static/;" in conf and "location /media" not in conf
    proxy = _volume_targets(config["services"]["proxy"])
    web = _volume_targets(config["services"]["web"])
    assert "/srv/static" in proxy.values() and "/srv/static" in web.values()
    assert "/etc/nginx/nginx.conf" in proxy.values()


def test_database_connections_of_the_whole_stack_fit_postgres_default_limit(config: dict[str, Any]) -> None:
    """web: VEIL_WEB_PROCESSES (2) x the pool (8); worker: 2 processes x 2; beat: 1. PostgreSQL allows 100."""
    services = config["services"]
    assert services["worker"]["environment"]["VEIL_DB_POOL_SIZE"] == "2"
    assert services["beat"]["environment"]["VEIL_DB_POOL_SIZE"] == "1"
    assert 2 * 8 + 2 * 2 + 1 < 100


def test_refuses_to_render_without_a_secret_key(tmp_path: Path) -> None:
    result = render(tmp_path)
    assert result.returncode != 0
    assert "set VEIL_SECRET_KEY" in result.stderr


# --- the image's build context ------------------------------------------------------------------------------------


def _dockerignore_patterns() -> list[tuple[bool, str]]:
    patterns = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        patterns.append((negated, os.path.normpath(line.lstrip("!").strip("/"))))
    return patterns


def _matches(pattern: str, path: str) -> bool:
    """Docker's rule: a pattern excludes a path when it matches the path or one of its parent folders."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    if pattern.startswith("**/"):
        tail = pattern[3:]
        return any(fnmatch.fnmatchcase(part, tail) for part in parts) or any(
            fnmatch.fnmatchcase(p, pattern) or fnmatch.fnmatchcase(p, tail) for p in prefixes
        )
    depth = pattern.count("/") + 1
    return any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes if prefix.count("/") + 1 == depth)


def ignored(path: str) -> bool:
    excluded = False
    for negated, pattern in _dockerignore_patterns():
        if _matches(pattern, path):
            excluded = not negated
    return excluded


@pytest.mark.parametrize(
    "path",
    [
        "var/secret_key",
        "var/veil.sqlite3",
        "var/media/originals/ab/cd/x.jpg",
        ".venv/bin/python",
        ".git/config",
        ".env",
        "compose/.env",
        "intake/__pycache__/models.cpython-311.pyc",
    ],
)
def test_build_context_leaves_out(path: str) -> None:
    assert ignored(path), f"{path} would be sent to the image build"


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",  # pyproject.toml names it as the readme: `pip install .` fails without it
        "manage.py",
        "config/settings.py",
        "intake/migrations/0001_initial.py",
        "review/models.py",
        "wellbeing/apps.py",
        "compose/entrypoint.sh",
    ],
)
def test_build_context_keeps_what_the_image_needs(path: str) -> None:
    assert (ROOT / path).exists()
    assert not ignored(path), f"{path} is needed by compose/Dockerfile but .dockerignore leaves it out"


def test_dockerfile_never_names_var_or_venv() -> None:
    instructions = re.findall(r"^\s*(?:COPY|ADD)\s+(.+)$", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert instructions
    for sources in instructions:
        for token in sources.split():
            assert not re.match(r"^(\./)?(var|\.venv)(/|$)", token), sources


def test_dockerfile_runs_as_a_non_root_user_on_python_311_slim() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, flags=re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert "pip install" in text and "collectstatic" in text
