"""Veil's one settings module. Everything configurable comes from typed environment variables (see config/env.py).

Embedded by default: no DATABASE_URL -> SQLite under VEIL_DATA_DIR; no REDIS_URL -> in-memory channel layer and
Celery tasks run eagerly in-process. Setting both switches to the real stack (PostgreSQL, channels_redis, a Celery
worker on Redis).
"""

from __future__ import annotations

import os
import secrets
import zoneinfo
from datetime import timedelta
from pathlib import Path
from typing import Any

import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from config.env import (
    database_from_url,
    env_bool,
    env_choice,
    env_int,
    env_json_object,
    env_list,
    env_str,
    sqlite_database,
)

# Generic admin and form classes (admin.ModelAdmin[Team]) at run time, as they are typed.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("VEIL_DATA_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = env_bool("VEIL_DEBUG", default=False)


def _secret_key() -> str:
    key = env_str("VEIL_SECRET_KEY")
    if key:
        return key
    # Embedded mode: keep a generated key beside the SQLite database so sessions survive restarts without anyone
    # having to invent a secret. A real deployment sets VEIL_SECRET_KEY (check --deploy insists on it).
    key_file = DATA_DIR / "secret_key"
    try:
        return key_file.read_text().strip()
    except FileNotFoundError:
        pass
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    try:
        # Created 0600 from the start, and exclusively: if two processes start at once, both use the first key.
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return key_file.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(key)
    return key


SECRET_KEY = _secret_key()
if len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("VEIL_SECRET_KEY must be at least 32 characters long")

ALLOWED_HOSTS = env_list("VEIL_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("VEIL_CSRF_TRUSTED_ORIGINS", [])

# Behind TLS (VEIL_SECURE=1) every cookie is secure and plain HTTP is redirected.
SECURE = env_bool("VEIL_SECURE", default=False)
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
SECURE_SSL_REDIRECT = SECURE and env_bool("VEIL_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env_int("VEIL_HSTS_SECONDS", 31_536_000 if SECURE else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE
SECURE_HSTS_PRELOAD = SECURE and env_bool("VEIL_HSTS_PRELOAD", default=False)
# Preloading is hard to undo, so it stays a deliberate choice; not choosing it is not a deployment fault.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
if env_bool("VEIL_BEHIND_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("VEIL_SESSION_HOURS", 12, minimum=1, maximum=24 * 14) * 3600
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = False  # the console's small JS reads it to send X-CSRFToken on fetch()

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    # Bottom to top; docs/architecture.md draws it, import-linter (pyproject.toml) enforces it.
    "core",
    "intake",
    "wellbeing",
    "review",
    "integrations",
    "oversight",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "core.i18n.PersonalLocaleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.middleware.ContentSecurityPolicyMiddleware",
    "config.middleware.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.roles.roles_context",
                "core.i18n.locale_context",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL")
DATABASES = {
    "default": database_from_url("DATABASE_URL", DATABASE_URL)
    if DATABASE_URL
    else sqlite_database(str(DATA_DIR / "veil.sqlite3"))
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# PostgreSQL connections come from a pool per process (psycopg_pool through Django's OPTIONS["pool"]): at most
# VEIL_DB_POOL_SIZE open at once, handed to whichever request thread needs one and returned when its request ends.
# A request that finds the pool empty waits up to VEIL_DB_POOL_TIMEOUT_SECONDS, then gets 503 database_unavailable.
# A deployment's total is (web processes + worker processes + beat) x the size: keep it under the server's
# max_connections (100 by default). 0 turns the pool off (a connection per request, closed at its end), for a
# deployment behind an external pooler such as PgBouncer.
VEIL_DB_POOL_SIZE = env_int("VEIL_DB_POOL_SIZE", 8, minimum=0, maximum=500)
VEIL_DB_POOL_TIMEOUT_SECONDS = env_int("VEIL_DB_POOL_TIMEOUT_SECONDS", 10, minimum=1, maximum=120)
# Threads per web process that serve HTTP requests (config/http_handler.py). More than the pool, so a request over
# the database's capacity waits on the pool, with its timeout and 503, rather than in a queue of its own.
VEIL_HTTP_THREADS = env_int("VEIL_HTTP_THREADS", 32, minimum=1, maximum=512)
# The claim path's statements run prepared on PostgreSQL (core.compiled: planning the gate's read cost more than
# running it). Off behind a pooler that cannot keep prepared statements (PgBouncer in transaction mode before 1.21,
# or without max_prepared_statements): `manage.py check --deploy` warns, veil.W005.
VEIL_DB_PREPARED_STATEMENTS = env_bool("VEIL_DB_PREPARED_STATEMENTS", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and VEIL_DB_POOL_SIZE:
    # CONN_HEALTH_CHECKS makes Django give the pool psycopg_pool's check: a connection that died while idle
    # (PostgreSQL restarted, a proxy cut it) is replaced, not handed out.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"]["OPTIONS"] = {
        # Not type-checked below: the env reader types OPTIONS as object
        **DATABASES["default"]["OPTIONS"],  # type: ignore[dict-item]
        "pool": {
            "min_size": 1,
            "max_size": VEIL_DB_POOL_SIZE,
            "timeout": VEIL_DB_POOL_TIMEOUT_SECONDS,
            "max_idle": 300,  # connections beyond min_size idle this long are closed
            "max_lifetime": 3600,
        },
    }

# Those prepared statements (core.compiled's only: Django binds its own queries on the client) are planned once per
# connection. PostgreSQL's default (plan_cache_mode=auto) plans each again for its first five runs before settling
# on the generic plan: on a new connection that cost the claim path about 35 ms over its first claims (issue 23). Sent
# as a connection startup option; VEIL_DB_GENERIC_PLANS=0 leaves PostgreSQL's default, for a pooler that refuses
# startup options.
VEIL_DB_GENERIC_PLANS = env_bool("VEIL_DB_GENERIC_PLANS", True)
if (DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and VEIL_DB_PREPARED_STATEMENTS
        and VEIL_DB_GENERIC_PLANS):
    # Not type-checked below: the env reader types OPTIONS as object
    _db_options: dict[str, Any] = dict(DATABASES["default"].get("OPTIONS") or {})  # type: ignore[call-overload]
    if "plan_cache_mode" not in str(_db_options.get("options", "")):  # not when the URL sets it already
        _db_options["options"] = f"{_db_options.get('options', '')} -c plan_cache_mode=force_generic_plan".strip()
    DATABASES["default"]["OPTIONS"] = _db_options

REDIS_URL = env_str("REDIS_URL")
REDIS_MAX_CONNECTIONS = env_int("VEIL_REDIS_MAX_CONNECTIONS", 1000, minimum=10)
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # Pub/sub: consoles only need fan-out of small events, and it has the lowest latency per broadcast.
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "max_connections": REDIS_MAX_CONNECTIONS}],
                "prefix": env_str("VEIL_CHANNEL_PREFIX", "veil"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
# Recovery from a worker killed mid-task, sized together (README, "Recovery"): a task is stopped after
# VEIL_TASK_TIME_LIMIT_SECONDS (a soft limit 5 s earlier lets it clean up); a task that waits before retrying holds
# its message at most VEIL_TASK_HOLD_SECONDS; Redis hands an unacknowledged task to another worker once it has been
# out for VEIL_TASK_VISIBILITY_SECONDS, looked for every 10 s. The visibility timeout must exceed the other two
# together, or a task still running (or waiting) would be delivered twice. At the defaults a killed worker's item
# is taken up again within 90 + 10 s, well inside the two minutes promised. 55 s (55 + 30 < 90): a minute of 720p
# video is decoded and re-encoded in one task (intake.motion stops itself 10 s before the limit, with a clear
# failure, rather than be killed); docs/benchmarks.md has the figures.
VEIL_TASK_TIME_LIMIT_SECONDS = env_int("VEIL_TASK_TIME_LIMIT_SECONDS", 55, minimum=10, maximum=3600)
VEIL_TASK_HOLD_SECONDS = env_int("VEIL_TASK_HOLD_SECONDS", 30, minimum=1, maximum=600)
VEIL_TASK_VISIBILITY_SECONDS = env_int("VEIL_TASK_VISIBILITY_SECONDS", 90, minimum=30)
if VEIL_TASK_VISIBILITY_SECONDS <= VEIL_TASK_TIME_LIMIT_SECONDS + VEIL_TASK_HOLD_SECONDS:
    raise ImproperlyConfigured(
        f"VEIL_TASK_VISIBILITY_SECONDS ({VEIL_TASK_VISIBILITY_SECONDS}) must be larger than "
        f"VEIL_TASK_TIME_LIMIT_SECONDS + VEIL_TASK_HOLD_SECONDS ({VEIL_TASK_TIME_LIMIT_SECONDS} + "
        f"{VEIL_TASK_HOLD_SECONDS}): a task still running or waiting to retry would be delivered twice"
    )
CELERY_TASK_TIME_LIMIT = VEIL_TASK_TIME_LIMIT_SECONDS
CELERY_TASK_SOFT_TIME_LIMIT = VEIL_TASK_TIME_LIMIT_SECONDS - 5
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": VEIL_TASK_VISIBILITY_SECONDS,
    # kombu looks for tasks past their visibility timeout every interval x throttle seconds (100 s by default).
    "unacked_restore_interval": 10,
    "unacked_restore_throttle": 1,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Languages: English is the source, French is translated in locale/fr. Each person chooses (saved on their account,
# moderation.PersonalLocale); otherwise the language cookie from the login page's switcher, then the browser's
# Accept-Language, then VEIL_LANGUAGE (core.i18n.PersonalLocaleMiddleware on top of Django's LocaleMiddleware).
LANGUAGES = [("en", "English"), ("fr", "Français")]
VEIL_LANGUAGE = env_choice("VEIL_LANGUAGE", "en", [code for code, _name in LANGUAGES])
LANGUAGE_CODE = VEIL_LANGUAGE
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_NAME = "veil_language"
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_COOKIE_SAMESITE = "Lax"
LANGUAGE_COOKIE_SECURE = SECURE
# Also the time zone of anyone who has not chosen their own (they can, beside their language).
TIME_ZONE = env_str("VEIL_TIME_ZONE", "UTC")
if TIME_ZONE not in zoneinfo.available_timezones():
    raise ImproperlyConfigured(f"VEIL_TIME_ZONE must be an IANA time zone such as Europe/Paris, got {TIME_ZONE!r}")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every start when it is missing
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve straight from the app folders unless a deployment ran collectstatic (the compose image does).
WHITENOISE_USE_FINDERS = env_bool("VEIL_STATIC_FROM_FINDERS", default=True)
WHITENOISE_AUTOREFRESH = DEBUG

# Originals and derivatives live under DATA_DIR/media, which no URL maps to: media is served only by views that
# check the role and the lease.
MEDIA_ROOT = Path(env_str("VEIL_MEDIA_ROOT", str(DATA_DIR / "media"))).resolve()
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(MEDIA_ROOT)}},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700

# Upload safety limits (bytes, pixels, frames).
VEIL_MAX_UPLOAD_BYTES = env_int("VEIL_MAX_UPLOAD_BYTES", 25 * 1024 * 1024, minimum=1024)
VEIL_MAX_PIXELS = env_int("VEIL_MAX_PIXELS", 50_000_000, minimum=10_000)
# Animated pictures: every frame is decoded and inspected, so the limits are on frames and running time (a GIF of
# 3,000 frames at 20 ms is one minute). A video may have up to 240 frames a second of VEIL_MAX_MEDIA_SECONDS.
VEIL_MAX_FRAMES = env_int("VEIL_MAX_FRAMES", 6000, minimum=1)
VEIL_MAX_MEDIA_SECONDS = env_int("VEIL_MAX_MEDIA_SECONDS", 300, minimum=1, maximum=3600)
# The clear stream of a video or animation: H.264 in MP4, at most this many pixels on its longest side (1280: 720p).
VEIL_STREAM_MAX_SIDE = env_int("VEIL_STREAM_MAX_SIDE", 1280, minimum=144, maximum=3840)
# Decoded pictures held in memory at once, per process (intake.media.DecodeBudget): a decode holds 8 bytes a
# pixel (the raster and one conversion copy), so at the default a 50-megapixel picture decodes alone and twelve
# 12-megapixel photos side by side. A request that waits longer than VEIL_DECODE_WAIT_SECONDS for room gets 503
# `busy` with Retry-After; a worker task retries.
VEIL_DECODE_BUDGET_MIB = env_int("VEIL_DECODE_BUDGET_MIB", 512, minimum=64)
VEIL_DECODE_WAIT_SECONDS = env_int("VEIL_DECODE_WAIT_SECONDS", 30, minimum=1, maximum=300)
VEIL_DISPLAY_MAX_SIDE = env_int("VEIL_DISPLAY_MAX_SIDE", 1600, minimum=256, maximum=4096)
FILE_UPLOAD_HANDLERS = ["intake.uploads.SizeLimitedUploadHandler"]
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024  # non-file form fields only

# Review behaviour.
VEIL_LEASE_SECONDS = env_int("VEIL_LEASE_SECONDS", 600, minimum=30, maximum=3600)
# The organisation's longest reveal; a moderator may choose shorter, never longer.
VEIL_REVEAL_SECONDS = env_int("VEIL_REVEAL_SECONDS", 10, minimum=1, maximum=30)
# The organisation's weakest blur (0-6); a moderator may choose stronger, never weaker.
VEIL_MIN_BLUR_LEVEL = env_int("VEIL_MIN_BLUR_LEVEL", 2, minimum=0, maximum=6)

# Wellbeing. Check-in answers are health data: kept this many days, then deleted by a scheduled task (or
# `manage.py purge_expired_checkins` in embedded mode). Exposure caps and breaks are an admin-edited policy.
VEIL_CHECKIN_RETENTION_DAYS = env_int("VEIL_CHECKIN_RETENTION_DAYS", 365, minimum=1, maximum=3650)
# Occupational-health reports hide any figure over fewer than this many people (COPSOQ survey practice: 5). It can
# be raised, never lowered below 5.
VEIL_MIN_GROUP_SIZE = env_int("VEIL_MIN_GROUP_SIZE", 5, minimum=5, maximum=100)

REST_FRAMEWORK: dict[str, object] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.token_auth.CompiledTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api_errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Veil API",
    "DESCRIPTION": "Ingest content for review, claim items, record decisions. Errors are "
    '{"error": "<code>", "detail": "<sentence>"}.',
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("VEIL_LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}

# Near-duplicate matching (intake/neardup.py documents each threshold). A JSON object here overrides defaults,
# e.g. VEIL_NEARDUP_THRESHOLDS='{"index_radius": 6}'; unknown names are refused at start-up.
VEIL_NEARDUP_THRESHOLDS = env_json_object("VEIL_NEARDUP_THRESHOLDS")
# pHash hash-list entries match within this many bits (PDQ entries use HMA's rule: distance <= 31, quality >= 50).
VEIL_LIST_PHASH_RADIUS = env_int("VEIL_LIST_PHASH_RADIUS", 6, minimum=0, maximum=16)

# Integrations (README, "Integrations"): decision webhooks, HMA-compatible matching, Coop-style submission.
# Outbound HTTP (webhooks, allow-listed fetches) never follows redirects and refuses loopback, private, link-local
# and other non-public addresses unless VEIL_OUTBOUND_ALLOW_PRIVATE is on (tests and closed networks).
VEIL_OUTBOUND_ALLOW_PRIVATE = env_bool("VEIL_OUTBOUND_ALLOW_PRIVATE", default=False)
VEIL_OUTBOUND_TIMEOUT_SECONDS = env_int("VEIL_OUTBOUND_TIMEOUT_SECONDS", 5, minimum=1, maximum=30)
VEIL_WEBHOOK_MAX_ATTEMPTS = env_int("VEIL_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1, maximum=20)
# The first retry waits this long, each later one twice as long (capped at an hour).
VEIL_WEBHOOK_BACKOFF_SECONDS = env_int("VEIL_WEBHOOK_BACKOFF_SECONDS", 30, minimum=0, maximum=3600)
# URL prefixes images may be fetched from (GET /h/hash?url=, Coop data.images). Empty: Veil fetches nothing.
VEIL_FETCH_URL_PREFIXES = env_list("VEIL_FETCH_URL_PREFIXES", [])
for _prefix in VEIL_FETCH_URL_PREFIXES:
    if not _prefix.startswith(("http://", "https://")) or _prefix.count("/") < 3 or not _prefix.endswith("/"):
        raise ImproperlyConfigured(
            f"VEIL_FETCH_URL_PREFIXES entries must look like https://host/path/ (ending in /), got {_prefix!r}"
        )
# Requests per minute per account on the integration endpoints (/h/, /m/, /api/v1/items/async/).
VEIL_INTEGRATION_RATE_PER_MINUTE = env_int("VEIL_INTEGRATION_RATE_PER_MINUTE", 600, minimum=1)
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"integrations": f"{VEIL_INTEGRATION_RATE_PER_MINUTE}/min"}
VEIL_COOP_MAX_ITEMS = env_int("VEIL_COOP_MAX_ITEMS", 100, minimum=1, maximum=1000)
# A JSON batch is refused above this size before it is read: base64 makes an image 4/3 larger.
VEIL_COOP_MAX_BODY_BYTES = env_int(
    "VEIL_COOP_MAX_BODY_BYTES", VEIL_MAX_UPLOAD_BYTES * 4 // 3 + 1024 * 1024, minimum=1024
)
# The largest request body the server reads at all, for anyone (config/http_limits.py): over it daphne answers 413
# as soon as the headers say so, or cuts a chunked body off when it gets there, before Django sees the request.
# Default: the largest body a Veil endpoint accepts (a Coop batch, or an upload with its form fields).
VEIL_MAX_REQUEST_BYTES = env_int(
    "VEIL_MAX_REQUEST_BYTES", max(VEIL_COOP_MAX_BODY_BYTES, VEIL_MAX_UPLOAD_BYTES + 1024 * 1024), minimum=64 * 1024
)

# Login throttling (django-axes): failed sign-ins counted per account and, separately, per address, in the database
# (shared by every process). Past the limit, signing in is refused (429, a page saying why and for how long) until
# the cool-off ends or an administrator resets it (`manage.py axes_reset_username NAME`); each lockout is audited.
INSTALLED_APPS.append("axes")
MIDDLEWARE.append("axes.middleware.AxesMiddleware")
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("VEIL_LOGIN_FAILURE_LIMIT", 5, minimum=1, maximum=100)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("VEIL_LOGIN_COOLOFF_MINUTES", 15, minimum=1, maximum=24 * 60))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each on its own: by account, and by address
# Failures expire with the cool-off, not with a success: axes' reset on success deletes every failure from the
# signing-in address, so an attacker signing in to their own account between guesses would reset a victim's count.
AXES_RESET_ON_SUCCESS = False
AXES_LOCKOUT_CALLABLE = "core.login_throttle.lockout_response"
AXES_CLIENT_IP_CALLABLE = "core.login_throttle.client_address"
AXES_VERBOSE = False  # lockouts are logged by core.login_throttle, without passwords or tokens

# Security hardening (issue 22): the OpenAPI schema's error responses (401, 429, 503, /h/ and /m/ refusals).
SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"] = [
    "drf_spectacular.hooks.postprocess_schema_enums",
    "config.api_schema.error_responses",
]
# An SQLite database holds health data: its files 0600, the data folder holding it 0700 (config/private_files.py).
_sqlite_name = str(DATABASES["default"]["NAME"]) if str(DATABASES["default"]["ENGINE"]).endswith("sqlite3") else ""
if _sqlite_name and ":memory:" not in _sqlite_name and not _sqlite_name.startswith("file:"):
    from config.private_files import private_sqlite_file

    private_sqlite_file(Path(_sqlite_name), data_dir=None if DATABASE_URL else DATA_DIR)
