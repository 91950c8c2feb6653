"""Django settings for Browserfleet: one module, driven by the environment.

Every variable is listed with its meaning in docs/configuration.md and .env.example.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path

import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from project.env import env_bool, env_int, env_list, env_secret, env_str
from project.netpolicy import parse_egress_allow

BASE_DIR = Path(__file__).resolve().parent.parent

# Generic admin classes (ModelAdmin[Model]) for the type checker; no other effect.
django_stubs_ext.monkeypatch()

# development | test | production. Only development and test may run without a secret key
# and may let browsers visit private and loopback addresses.
ENVIRONMENT = env_str("BROWSERFLEET_ENV", "production")
if ENVIRONMENT not in {"development", "test", "production"}:
    raise ValueError(f"BROWSERFLEET_ENV must be development, test or production, not {ENVIRONMENT!r}")
_NOT_PRODUCTION = ENVIRONMENT != "production"

SECRET_KEY = env_secret(
    "DJANGO_SECRET_KEY",
    insecure_fallback="django-insecure-development-only" if _NOT_PRODUCTION else None,
)
DEBUG = env_bool("DJANGO_DEBUG", False)
if not _NOT_PRODUCTION:
    # Debug pages show settings and tracebacks to anyone; a guessable key forges admin sessions.
    if DEBUG:
        raise ImproperlyConfigured("DJANGO_DEBUG=true is refused when BROWSERFLEET_ENV=production.")
    if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith("django-insecure"):
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is too weak for production: use 50 or more random characters, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'."
        )
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# HTTPS, for a deployment behind a TLS-terminating proxy (docker-compose.yml turns these on).
# Off by default: on a plain-HTTP deployment they would lock the admin out, and the redirect
# would turn the SDK's POSTs into GETs.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)
# The header the proxy sets to say the client used HTTPS, e.g. X-Forwarded-Proto (value "https").
_PROXY_SSL_HEADER = env_str("DJANGO_SECURE_PROXY_SSL_HEADER", "")
if _PROXY_SSL_HEADER:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _PROXY_SSL_HEADER.upper().replace("-", "_"), "https")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "billing",
    "webhooks",
    "sessions.apps.BrowserSessionsConfig",
    "jobs.apps.JobsConfig",
    "workers",
    "ops",
    # Failed-login limiting for the console and the admin (django-axes, docs/console.md).
    "axes",
    "console",
]

MIDDLEWARE = [
    # /healthz, /readyz and /metrics, whatever the Host header (ops/middleware.py).
    "ops.middleware.ProbeMiddleware",
    "project.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy (django-csp; CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    # Serves the admin's static files from gunicorn; no separate web server needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

# The console's and the admin's logins (django-axes first: it refuses a locked-out login before
# any password is checked).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# The SDK's POST must never meet a redirect (a 301 turns it into a GET): no slash appending.
APPEND_SLASH = False

ROOT_URLCONF = "project.urls"

# Operators' admin passwords (API keys are random and never pass through these).
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Each process keeps its database connections in a pool (Django's psycopg pool): at most
# POSTGRES_POOL_SIZE, whatever its thread count, reused from task to task and request to request
# (before, the actions worker's threads opened a connection per task). Prefork workers (one
# thread per process) switch it off for themselves (project/db.py) and keep one persistent
# connection per process. 0 turns pools off everywhere (POSTGRES_CONN_MAX_AGE applies then).
# docs/database-connections.md sizes them against max_connections.
POSTGRES_POOL_SIZE = env_int("POSTGRES_POOL_SIZE", 8, minimum=0)
# How long a thread waits for a pooled connection before its request or task fails (503, retry).
# Without a pool (POSTGRES_POOL_SIZE=0, and prefork workers): how long a connection is kept.
POSTGRES_CONN_MAX_AGE = env_int("POSTGRES_CONN_MAX_AGE", 60, minimum=0)
POSTGRES_POOL_TIMEOUT_SECONDS = env_int("POSTGRES_POOL_TIMEOUT_SECONDS", 10, minimum=1)
_DB_POOL = (
    {"min_size": 1, "max_size": POSTGRES_POOL_SIZE, "timeout": POSTGRES_POOL_TIMEOUT_SECONDS}
    if POSTGRES_POOL_SIZE
    else None
)
# The connection budget (project/db.py connection_budget, checked when a web or worker process
# starts): the processes that share this database. bin/dev reads the same variables to start
# them; docs/database-connections.md.
WEB_WORKERS = env_int("WEB_WORKERS", 2, minimum=1)  # web processes in all, on every web machine
WEB_THREADS = env_int("WEB_THREADS", 32, minimum=1)
ACTION_THREADS = env_int("ACTION_THREADS", 32, minimum=1)
LIFECYCLE_CONCURRENCY = env_int("LIFECYCLE_CONCURRENCY", os.cpu_count() or 1, minimum=1)
JOBS_WORKER_CONCURRENCY = env_int("JOBS_WORKER_CONCURRENCY", 4, minimum=1)
WEBHOOKS_WORKER_CONCURRENCY = env_int("WEBHOOKS_WORKER_CONCURRENCY", 4, minimum=1)
WORKER_HOSTS = env_int("WORKER_HOSTS", 1, minimum=1)  # machines running the workers
# Connections left for everything else: manage.py, migrations, psql, monitoring.
POSTGRES_CONNECTION_MARGIN = env_int("POSTGRES_CONNECTION_MARGIN", 10, minimum=0)
DATABASES = {
    "default": {
        # Django's PostgreSQL backend with a cheaper check of pooled connections (project/pg_check.py).
        "ENGINE": "project.postgresql",
        "HOST": env_str("POSTGRES_HOST", "127.0.0.1"),
        "PORT": env_int("POSTGRES_PORT", 5432),
        "NAME": env_str("POSTGRES_DB", "browserfleet"),
        "USER": env_str("POSTGRES_USER", "postgres"),
        "PASSWORD": env_str("POSTGRES_PASSWORD", ""),
        # A pool keeps connections itself (Django refuses both).
        "CONN_MAX_AGE": 0 if _DB_POOL else POSTGRES_CONN_MAX_AGE,
        # A connection taken from the pool (project/pg_check.py: a round trip only for one that shows
        # trouble), or a prefork worker's persistent one at its first query of a task (an empty
        # query), is checked first: without it, every connection
        # opened before a PostgreSQL restart failed its next request or task once, and a lifecycle
        # child's first browser start after the restart failed (tests/faults, issue 20).
        "CONN_HEALTH_CHECKS": env_bool("POSTGRES_CONN_HEALTH_CHECKS", True),
        # The hot path's statements (project/rows.py hot_cursor) are prepared on each connection
        # after 5 runs. Turn off behind PgBouncer in transaction pooling mode.
        "OPTIONS": {
            "prepare_threshold": 5 if env_bool("POSTGRES_PREPARED_STATEMENTS", True) else None,
            **({"pool": _DB_POOL} if _DB_POOL else {}),
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
# Screenshots are written by workers and read by web: on several machines, point the default
# storage at shared storage (a shared volume, or an object store backend).
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "var" / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if ENVIRONMENT == "test":
    # Tests do not run collectstatic.
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttling.PlanRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "project.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# The OpenAPI description (project/openapi.py): /v1/openapi.json, /v1/openapi.yaml, /v1/docs.
SPECTACULAR_SETTINGS = {
    "TITLE": "Browserfleet API",
    "DESCRIPTION": (
        "Rent real headless Chromium browsers. The Computer API (the Tzafon contract, so the "
        "`tzafon` SDK works unchanged) is served under `/v1/` and, for the SDK's default base "
        "URL, at the root; the rest of the API only under `/v1/`. Errors are JSON "
        "(`#/components/schemas/ErrorBody`). An action that takes longer than the wait budget "
        "answers 202: poll `GET /v1/actions/{action_id}`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",  # served from our static files, no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": True},
    "PREPROCESSING_HOOKS": ["sessions.api.schema.expand_action_endpoints"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "sessions.api.schema.describe_root_mount",
        "ops.schema.describe_probes",
    ],
    "ENUM_NAME_OVERRIDES": {
        "ErrorStatus": ["error"],
        "ActionResultStatus": ["success", "error", "pending"],
        "StepStatus": ["success", "error"],
        "JobStatus": ["queued", "running", "cancelling", "completed", "failed", "cancelled"],
        "JobItemStatus": ["queued", "running", "succeeded", "failed", "skipped", "cancelled"],
        # Both webhook event lists are named "events"; given by import path so they never drift.
        "JobWebhookEvent": "jobs.api.serializers.WEBHOOK_EVENTS",
        "WebhookEventType": "webhooks.api.serializers.EVENT_CHOICES",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"no_url_tokens": {"()": "project.access_log.RedactUrlTokens"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["no_url_tokens"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "selenium": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.app.trace": {"level": "WARNING"},
    },
}

# --- Web process (ASGI: project/asgi.py) -----------------------------------------------------
# WEB_THREADS (above, with the connection budget): threads per web process that run the sync API
# views. Streams and waiting creates and actions hold none of them while they wait.

# --- Watching sessions (docs/streams.md) ------------------------------------------------------
# GET /computers/{id}/events: a session's events kept in Redis (at most this many, for this long
# after the last one); a client reconnecting with Last-Event-ID gets what is still kept.
SESSION_EVENTS_MAX_EVENTS = env_int("SESSION_EVENTS_MAX_EVENTS", 1000, minimum=10)
SESSION_EVENTS_RETENTION_SECONDS = env_int("SESSION_EVENTS_RETENTION_SECONDS", 3600, minimum=60)
# Streams (events, screencast) one account may hold open at once; more get 429 with Retry-After.
ACCOUNT_MAX_OPEN_STREAMS = env_int("ACCOUNT_MAX_OPEN_STREAMS", 20, minimum=1)
# A comment line this often on an open event stream, so proxies and clients see it alive.
STREAM_KEEPALIVE_SECONDS = env_int("STREAM_KEEPALIVE_SECONDS", 15, minimum=1)
# POST /v1/computers/{id}/live: how long a viewer link works (never past the session's end).
LIVE_VIEWER_TTL_SECONDS = env_int("LIVE_VIEWER_TTL_SECONDS", 900, minimum=30)
# Page logs (docs/logs-and-recordings.md): console messages, page errors and network requests
# collected on the browser's host through DevTools. Per session at most this many entries and
# bytes (of stored JSON); later entries are counted as dropped, not stored.
SESSION_LOGS_ENABLED = env_bool("SESSION_LOGS_ENABLED", True)
SESSION_LOGS_MAX_ENTRIES = env_int("SESSION_LOGS_MAX_ENTRIES", 5000, minimum=10)
SESSION_LOGS_MAX_BYTES = env_int("SESSION_LOGS_MAX_BYTES", 2_000_000, minimum=10_000)
# Logs are kept this long after their session ended, then Beat deletes them.
SESSION_LOGS_RETENTION_DAYS = env_int("SESSION_LOGS_RETENTION_DAYS", 7, minimum=1)
# Recordings (create option `record`): frames of the screencast, at most this many per second,
# this many bytes and seconds per session (then the recording stops, `truncated`); kept this
# long after the session ended. A replay link works for REPLAY_TTL seconds.
RECORDING_FPS = env_int("RECORDING_FPS", 5, minimum=1)
RECORDING_MAX_BYTES = env_int("RECORDING_MAX_BYTES", 200_000_000, minimum=100_000)
RECORDING_MAX_SECONDS = env_int("RECORDING_MAX_SECONDS", 4 * 3600, minimum=10)
RECORDING_RETENTION_DAYS = env_int("RECORDING_RETENTION_DAYS", 7, minimum=1)
# The bytes all recordings of one account may hold (frames and MP4 exports), for plans that do
# not set their own (Plan.recording_storage_bytes; RECORDING_RETENTION_DAYS likewise).
RECORDING_ACCOUNT_STORAGE_BYTES = env_int("RECORDING_ACCOUNT_STORAGE_BYTES", 1024**3, minimum=1_000_000)
RECORDING_REPLAY_TTL_SECONDS = env_int("RECORDING_REPLAY_TTL_SECONDS", 900, minimum=30)
# MP4 export (`?format=mp4`): the ffmpeg binary the workers run (Debian's `ffmpeg` package), and
# how long one encode may take before it is killed and the export fails.
RECORDING_FFMPEG_BINARY = env_str("RECORDING_FFMPEG_BINARY", "ffmpeg")
RECORDING_EXPORT_TIMEOUT_SECONDS = env_int("RECORDING_EXPORT_TIMEOUT_SECONDS", 600, minimum=10)

# --- Redis and Celery -------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")

# Longest task hard limit is a browser start (see workers/tasks.py); Redis must not redeliver a
# task that is still running, so the visibility timeout stays well above every hard limit.
CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "lifecycle"
CELERY_TASK_ROUTES = {
    # Beat's periodic bookkeeping: a queue of its own, consumed by the actions worker's threads,
    # so that a sweep or a reconcile never waits behind browser starts in the lifecycle worker's
    # processes (issue 20: an idle session ended 6.8 s late behind two Chromium starts).
    "workers.tasks.sessions_sweep": {"queue": "maintenance"},
    "workers.tasks.actions_reconcile": {"queue": "maintenance"},
    "workers.tasks.browsers_reconcile": {"queue": "maintenance"},
    "workers.tasks.sessions_bill_time": {"queue": "maintenance"},
    "workers.job_tasks.jobs_tick": {"queue": "maintenance"},
    "workers.tasks.session_start": {"queue": "lifecycle"},
    "workers.tasks.session_stop": {"queue": "lifecycle"},
    "workers.tasks.sessions_stop": {"queue": "lifecycle"},
    "workers.tasks.screenshots_purge": {"queue": "lifecycle"},
    "workers.tasks.actions_run": {"queue": "actions"},
    "workers.tasks.session_adopt": {"queue": "actions"},
    "workers.tasks.pool_refill": {"queue": "lifecycle"},
    "workers.tasks.host_reconcile": {"queue": "lifecycle"},
    # A live save reads the browser like an action does: on the actions queue of its host.
    "workers.tasks.session_state_save": {"queue": "actions"},
    "workers.tasks.saved_states_purge": {"queue": "maintenance"},
    "workers.tasks.page_logs_purge": {"queue": "maintenance"},
    "workers.tasks.recordings_finalize": {"queue": "maintenance"},
    "workers.tasks.recordings_purge": {"queue": "maintenance"},
    "workers.tasks.recording_export_mp4": {"queue": "maintenance"},
    # Batch jobs: their own queues, so that bulk scraping never delays actions.
    "workers.job_tasks.job_browser_run": {"queue": "jobs"},
    # Short bookkeeping: never stuck behind job browsers that fill the jobs queue's workers.
    "workers.job_tasks.jobs_dispatch": {"queue": "lifecycle"},
    "workers.job_tasks.jobs_purge": {"queue": "lifecycle"},
    # Webhook deliveries (webhooks/, workers/webhook_tasks.py): their own queue and worker, so a
    # slow receiver never holds a job's or an action's process.
    "workers.webhook_tasks.webhook_deliver": {"queue": "webhooks"},
    "workers.webhook_tasks.webhooks_sweep": {"queue": "webhooks"},
    "workers.webhook_tasks.webhooks_purge": {"queue": "webhooks"},
    "workers.webhook_tasks.sessions_expiring": {"queue": "webhooks"},
    "workers.webhook_tasks.owners_notify": {"queue": "webhooks"},
}
# workers/tasks.py is found by autodiscovery and imports the job tasks (workers/job_tasks.py).
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's Django fix-up closes every database connection before and after each task unless
# this is set: a new PostgreSQL connection per action cost ~8 ms (bench/action_roundtrip.py).
# Old or broken connections are still retired by close_old_connections (workers/tasks.py),
# which honours CONN_MAX_AGE.
CELERY_DB_REUSE_MAX = 1000
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Workers write a heartbeat into Redis this often (project/heartbeat.py); /readyz wants one
# younger than WORKER_HEARTBEAT_MAX_AGE_SECONDS.
WORKER_HEARTBEAT_SECONDS = env_int("WORKER_HEARTBEAT_SECONDS", 10, minimum=1)
WORKER_HEARTBEAT_MAX_AGE_SECONDS = env_int("WORKER_HEARTBEAT_MAX_AGE_SECONDS", 60, minimum=1)

# --- Browsers ---------------------------------------------------------------------------------
SELENIUM_GRID_URL = env_str("SELENIUM_GRID_URL", "").rstrip("/")
# The hub's basic auth (docker-compose.yml sets SE_ROUTER_USERNAME/SE_ROUTER_PASSWORD on the hub):
# sent with every request to SELENIUM_GRID_URL, never put in the URL (which is stored per session).
SELENIUM_GRID_USERNAME = env_str("SELENIUM_GRID_USERNAME", "")
SELENIUM_GRID_PASSWORD = env_str("SELENIUM_GRID_PASSWORD", "")
BROWSER_BACKEND = env_str("BROWSER_BACKEND", "grid" if SELENIUM_GRID_URL else "local")
if BROWSER_BACKEND not in {"local", "grid"}:
    raise ValueError(f"BROWSER_BACKEND must be local or grid, not {BROWSER_BACKEND!r}")
if BROWSER_BACKEND == "grid" and not SELENIUM_GRID_URL:
    raise ValueError("BROWSER_BACKEND=grid needs SELENIUM_GRID_URL")
# The two browser flavours the local backend starts, picked per browser (a session's create field
# `browser`, a job's, the warm pools): full Chromium (sessions' default) in --headless=new, and
# Chromium's headless shell (Debian's chromium-headless-shell, installed by bin/dev; batch jobs'
# default): the same engine without the desktop browser around it, started in about a fifth of
# the CPU time, but pages cannot open windows and failed loads carry no net error code
# (docs/operations.md "Browser flavours", workers/browser/options.py).
CHROMIUM_BINARY = env_str("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMIUM_HEADLESS_SHELL_BINARY = env_str(
    "CHROMIUM_HEADLESS_SHELL_BINARY", "/usr/lib/chromium/chromium-headless-shell"
)
if "headless-shell" in Path(CHROMIUM_BINARY).name or "headless_shell" in Path(CHROMIUM_BINARY).name:
    # Before flavours, a host ran the shell for every browser this way.
    raise ValueError(
        f"CHROMIUM_BINARY is full Chromium, not the headless shell ({CHROMIUM_BINARY}): set "
        "CHROMIUM_HEADLESS_SHELL_BINARY instead, and pick the shell per browser (a create's `browser`, "
        "JOB_BROWSER_FLAVOUR, BROWSER_POOL_SIZE_HEADLESS_SHELL)"
    )
CHROMEDRIVER_BINARY = env_str("CHROMEDRIVER_BINARY", "/usr/bin/chromedriver")
BROWSER_PROFILE_ROOT = Path(env_str("BROWSER_PROFILE_ROOT", str(BASE_DIR / "var" / "browsers")))
# Chromium's sandbox (workers/browser/sandbox.py): auto (where the host allows it), on (or no
# browser), off (--no-sandbox, as the worker's own user). A root worker runs browsers as uids
# from BROWSER_SANDBOX_UID_BASE on (one per live browser, no passwd entry needed), leased from a
# per-host free list in BROWSER_SANDBOX_UID_DIR (shared by all worker processes of the host).
BROWSER_SANDBOX = env_str("BROWSER_SANDBOX", "auto")
if BROWSER_SANDBOX not in {"auto", "on", "off"}:
    raise ImproperlyConfigured(f"BROWSER_SANDBOX must be auto, on or off, not {BROWSER_SANDBOX!r}")
BROWSER_SANDBOX_UID_BASE = env_int("BROWSER_SANDBOX_UID_BASE", 200_000, minimum=1000)
BROWSER_SANDBOX_UID_DIR = Path(env_str("BROWSER_SANDBOX_UID_DIR", "/run/browserfleet/sandbox-uids"))
# An nftables rule that lets the sandbox uids connect to the egress filter only
# (workers/browser/firewall.py): auto (where root and nft allow it), on (or no browser), off.
# Off by default: with it on, Chromium talks to chromedriver over a pipe and listens on no
# DevTools port, so the screencast and the live viewer (docs/streams.md) cannot attach to it
# (docs/egress.md, "The sandbox firewall and watching").
BROWSER_SANDBOX_FIREWALL = env_str("BROWSER_SANDBOX_FIREWALL", "off")
if BROWSER_SANDBOX_FIREWALL not in {"auto", "on", "off"}:
    raise ImproperlyConfigured(
        f"BROWSER_SANDBOX_FIREWALL must be auto, on or off, not {BROWSER_SANDBOX_FIREWALL!r}"
    )
BROWSER_START_TIMEOUT_SECONDS = env_int("BROWSER_START_TIMEOUT_SECONDS", 20, minimum=1)
# A start that fails (on a CPU-saturated host: Chromium's new-session call times out) is tried
# again, up to this many attempts in all, while its create still waits for it.
BROWSER_START_ATTEMPTS = env_int("BROWSER_START_ATTEMPTS", 3, minimum=1)
# Local Chromium starts one host runs at once (sessions, pool refills, job browsers together;
# workers/start_slots.py): a start beyond waits for a slot, within its create's wait, instead of
# slowing every start down until their DevTools calls time out. One per core by default.
BROWSER_STARTS_PER_HOST = env_int("BROWSER_STARTS_PER_HOST", os.cpu_count() or 1, minimum=1)
# A browser start is CPU-bound batch work; live sessions' clicks are not. A starting browser runs
# at this nice value (its process group and, where the kernel groups sessions, its autogroup)
# until BROWSER_START_NICE_SECONDS after it answers, then at 0 like every live browser (lowering
# it again needs root or CAP_SYS_NICE; without, browsers stay at this value). 0: off.
BROWSER_START_NICE = env_int("BROWSER_START_NICE", 10, minimum=0)
if BROWSER_START_NICE > 19:
    raise ImproperlyConfigured(f"BROWSER_START_NICE must be 0 to 19, not {BROWSER_START_NICE}")
BROWSER_START_NICE_SECONDS = env_int("BROWSER_START_NICE_SECONDS", 2, minimum=0)
# Every browser sends all its traffic through the egress filter (workers/egress, one per worker
# host), which refuses private, loopback, link-local and metadata addresses unless
# BROWSER_EGRESS_ALLOW (project/netpolicy.py) lists them. A browser never starts without it.
BROWSER_EGRESS_ENABLED = env_bool("BROWSER_EGRESS_ENABLED", True)
# Where browsers reach the filter: 127.0.0.1 for the local backend; the filter's host name as
# seen from the Grid nodes for the grid backend.
BROWSER_EGRESS_HOST = env_str("BROWSER_EGRESS_HOST", "127.0.0.1")
BROWSER_EGRESS_PORT = env_int("BROWSER_EGRESS_PORT", 3128, minimum=1)
# Upstream proxies (docs/proxies.md). The directory of per-browser route files the worker writes
# and the egress filter reads (the filter reads it from its own environment): root's, 0700.
# Unset: no session can have a proxy (a create asking for one is refused, never sent direct).
EGRESS_ROUTES_DIR = env_str("EGRESS_ROUTES_DIR", "")
# The operator's pool for `use_advanced_proxy`: comma-separated `[tag=]http://[user:pass@]host:port`
# (a tag such as a country code is what `proxy_country` picks by). Empty: no pool.
ADVANCED_PROXY_URLS = env_list("ADVANCED_PROXY_URLS", [])
# After a proxied browser stops, how long the worker waits for the filter to report its last bytes
# before charging what it has (later bytes are charged by the next billing run).
PROXY_METER_SETTLE_SECONDS = env_int("PROXY_METER_SETTLE_SECONDS", 3, minimum=0)
# A Grid session younger than this may be one a worker is starting right now: reconcile spares it.
BROWSER_ORPHAN_GRACE_SECONDS = env_int("BROWSER_ORPHAN_GRACE_SECONDS", 60, minimum=0)


def _default_browsers_per_host() -> int:
    # ~200 MB per browser (PSS of Chromium and chromedriver with a light page), leaving a quarter
    # of the memory to everything else; and no more than 8 per core, beyond which pages crawl.
    try:
        memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (ValueError, OSError):
        memory_mb = 4096
    return max(1, min(memory_mb * 3 // 4 // 200, 8 * (os.cpu_count() or 1)))


# --- The fleet: worker hosts, warm pool, capacity -----------------------------------------------
# The name of this worker host: its queues are host.<name> (starts, stops) and actions.<name>.
WORKER_HOST = env_str("WORKER_HOST", "") or socket.gethostname()
# Browsers (sessions and warm pool) one host may run; a create answers 503 no_capacity beyond.
BROWSERS_PER_HOST = env_int("BROWSERS_PER_HOST", _default_browsers_per_host(), minimum=1)
# Blank browsers each host keeps started for fast creates (local backend; 0 disables the pool), a
# pool per flavour: full Chromium, and the headless shell. Both count toward BROWSERS_PER_HOST.
BROWSER_POOL_SIZE = env_int("BROWSER_POOL_SIZE", 2, minimum=0)
BROWSER_POOL_SIZE_HEADLESS_SHELL = env_int("BROWSER_POOL_SIZE_HEADLESS_SHELL", 0, minimum=0)
# Pool browsers older than this are replaced by fresh ones.
BROWSER_POOL_MAX_AGE_SECONDS = env_int("BROWSER_POOL_MAX_AGE_SECONDS", 1800, minimum=10)
# Each host writes its heartbeat this often; one silent for HOST_DEAD_AFTER_SECONDS is dead:
# its sessions end as crashed and its pool is forgotten.
HOST_HEARTBEAT_SECONDS = env_int("HOST_HEARTBEAT_SECONDS", 5, minimum=1)
HOST_DEAD_AFTER_SECONDS = env_int("HOST_DEAD_AFTER_SECONDS", 3 * HOST_HEARTBEAT_SECONDS, minimum=2)

# --- Sessions ---------------------------------------------------------------------------------
SESSION_SWEEP_INTERVAL_SECONDS = env_int("SESSION_SWEEP_INTERVAL_SECONDS", 5, minimum=1)
RECONCILE_INTERVAL_SECONDS = env_int("RECONCILE_INTERVAL_SECONDS", 30, minimum=1)
# Beat period of session-time billing: a started minute is charged within this many seconds.
BILLING_INTERVAL_SECONDS = env_int("BILLING_INTERVAL_SECONDS", 10, minimum=1)
# Adding credits in the console (billing/payments.py, docs/billing.md). Stripe Checkout is offered
# when both Stripe secrets are set; otherwise the Billing page says to ask BILLING_CONTACT.
STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY", "")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET", "")
# Stripe's API address (tests point it at a loopback stand-in; nothing else should change it).
STRIPE_API_BASE = env_str("STRIPE_API_BASE", "https://api.stripe.com").rstrip("/")
STRIPE_CURRENCY = env_str("STRIPE_CURRENCY", "usd").lower()
# The price of 1,000 credits in the currency's smallest unit (cents); credits are bought in 1,000s.
STRIPE_PRICE_PER_1000_CREDITS = env_int("STRIPE_PRICE_PER_1000_CREDITS", 100, minimum=1)
# Who tenants ask for credits when no payment provider is set up (shown on the Billing page).
BILLING_CONTACT = env_str("BILLING_CONTACT", "")
# How long POST /computers waits for the browser. The SDK resends a create after 60 s (and is
# answered 2 s before its read timeout: sessions/api/views.py client_wait_budget). A waiting create
# holds no thread (project/awaiting.py), so on a saturated host it may wait for a start slot and a
# second start attempt rather than fail (issue 20: 30 s made 1 create in 60 answer 503 under load).
SESSION_CREATE_WAIT_SECONDS = env_int("SESSION_CREATE_WAIT_SECONDS", 55, minimum=1)
# ...and at least this long whatever the client's read timeout says: a create given up too early
# ends its session as start_failed after the browser was started, which costs us and not them.
SESSION_CREATE_MIN_WAIT_SECONDS = env_int("SESSION_CREATE_MIN_WAIT_SECONDS", 5, minimum=0)
# How long DELETE /computers/{id} waits for the browser to be gone before answering anyway.
SESSION_STOP_WAIT_SECONDS = env_int("SESSION_STOP_WAIT_SECONDS", 10, minimum=0)
DEFAULT_INACTIVITY_TIMEOUT_SECONDS = env_int("DEFAULT_INACTIVITY_TIMEOUT_SECONDS", 120, minimum=1)

# --- Saved browser state (persistent sessions, docs/saved-state.md) -----------------------------
# AES-256-GCM keys, `id:base64-of-32-bytes`, comma-separated; the first one encrypts, all decrypt.
# Empty: one key derived from DJANGO_SECRET_KEY (rotating that key then loses every saved state).
SAVED_STATE_KEYS = env_list("SAVED_STATE_KEYS", [])
# Where new saves are kept: `postgres` or `s3` (any S3-compatible object store). A state is read
# from the store its row names, so switching loses nothing (docs/saved-state.md, "Where").
SAVED_STATE_STORE = env_str("SAVED_STATE_STORE", "postgres")
if SAVED_STATE_STORE not in ("postgres", "s3"):
    raise ImproperlyConfigured(f"SAVED_STATE_STORE must be postgres or s3, not {SAVED_STATE_STORE!r}")
# The `s3` store: bucket (it must exist), key prefix, endpoint (empty: AWS), region and credentials
# (empty: boto3's own chain: environment, instance role, ...). Only ciphertext is sent there.
SAVED_STATE_S3_BUCKET = env_str("SAVED_STATE_S3_BUCKET", "")
SAVED_STATE_S3_PREFIX = env_str("SAVED_STATE_S3_PREFIX", "saved-states/")
SAVED_STATE_S3_ENDPOINT_URL = env_str("SAVED_STATE_S3_ENDPOINT_URL", "")
SAVED_STATE_S3_REGION = env_str("SAVED_STATE_S3_REGION", "us-east-1")
SAVED_STATE_S3_ACCESS_KEY_ID = env_str("SAVED_STATE_S3_ACCESS_KEY_ID", "")
SAVED_STATE_S3_SECRET_ACCESS_KEY = env_str("SAVED_STATE_S3_SECRET_ACCESS_KEY", "")
# Connect and read timeout of one object-store request (a save or restore waits for it).
SAVED_STATE_S3_TIMEOUT_SECONDS = env_int("SAVED_STATE_S3_TIMEOUT_SECONDS", 10, minimum=1)
if SAVED_STATE_STORE == "s3" and not SAVED_STATE_S3_BUCKET:
    raise ImproperlyConfigured("SAVED_STATE_STORE=s3 needs SAVED_STATE_S3_BUCKET")
# The longest a save or a restore may take on the worker (a save runs before the browser stops).
SAVED_STATE_TIMEOUT_SECONDS = env_int("SAVED_STATE_TIMEOUT_SECONDS", 30, minimum=1)

# --- Actions ---------------------------------------------------------------------------------
# How long an action request waits for its result before answering 202 (poll GET /v1/actions/{id}).
ACTION_WAIT_SECONDS = env_int("ACTION_WAIT_SECONDS", 45, minimum=1)
# A running action's lease: its worker renews it every third of this; Beat settles (errors and
# refunds) an action whose lease ran out, within this plus SESSION_SWEEP_INTERVAL_SECONDS.
ACTION_LEASE_SECONDS = env_int("ACTION_LEASE_SECONDS", 15, minimum=3)
# A queued action older than this whose session nobody drains was never delivered to a worker
# (the broker was down when it was accepted): Beat sends it again.
ACTION_REDELIVER_AFTER_SECONDS = env_int("ACTION_REDELIVER_AFTER_SECONDS", 10, minimum=1)
# A batch starts no step after running this long; the steps it did not start are refunded. One
# step is bounded on its own (page loads 25 s, step timeouts 20 s, deliberate waits 60 s a batch).
ACTION_BATCH_MAX_SECONDS = env_int("ACTION_BATCH_MAX_SECONDS", 120, minimum=1)
# One drain (a task that runs a session's queued actions in order) stops after this long (Celery's
# soft time limit, hard limit one minute later): the action it is in ends, and a new task takes
# the rest of the queue, so a long queue never holds one worker slot for good.
ACTION_DRAIN_TIME_LIMIT_SECONDS = env_int("ACTION_DRAIN_TIME_LIMIT_SECONDS", 600, minimum=5)
# An `html` result holds at most this many bytes of the page (cut, with "truncated": true); a
# whole action's stored result (all steps of a batch together) at most ACTION_RESULT_MAX_BYTES,
# its longest strings cut first. Results go into a row and through Redis to the waiting request.
HTML_MAX_BYTES = env_int("HTML_MAX_BYTES", 5 * 1024 * 1024, minimum=1024)
ACTION_RESULT_MAX_BYTES = env_int("ACTION_RESULT_MAX_BYTES", 8 * 1024 * 1024, minimum=64 * 1024)
SCREENSHOT_URL_TTL_SECONDS = env_int("SCREENSHOT_URL_TTL_SECONDS", 3600, minimum=60)

# --- Batch jobs ------------------------------------------------------------------------------
# Results (rows and screenshots) are deleted this many days after a job ends.
JOB_RESULTS_TTL_DAYS = env_int("JOB_RESULTS_TTL_DAYS", 7, minimum=1)
# A page's lease; a heartbeat renews it every third of this. A lost worker's pages are queued
# again within this plus JOB_TICK_INTERVAL_SECONDS.
JOB_ITEM_LEASE_SECONDS = env_int("JOB_ITEM_LEASE_SECONDS", 20, minimum=3)
# A working job browser's lease (renewed by its heartbeat). One whose task waits in the queue
# holds its slot up to the broker's visibility timeout, after which Redis redelivers the task.
JOB_BROWSER_LEASE_SECONDS = env_int("JOB_BROWSER_LEASE_SECONDS", 60, minimum=10)
JOB_BROWSER_QUEUED_LEASE_SECONDS = CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
JOB_TICK_INTERVAL_SECONDS = env_int("JOB_TICK_INTERVAL_SECONDS", 5, minimum=1)
# The flavour of batch jobs' browsers when a job does not ask (its `browser`): chromium or
# headless_shell (docs/operations.md "Browser flavours").
JOB_BROWSER_FLAVOUR = env_str("JOB_BROWSER_FLAVOUR", "headless_shell")
if JOB_BROWSER_FLAVOUR not in {"chromium", "headless_shell"}:
    raise ValueError(f"JOB_BROWSER_FLAVOUR must be chromium or headless_shell, not {JOB_BROWSER_FLAVOUR!r}")
# A job browser restarts after this many pages (bounds what a long job's browser accumulates).
JOB_BROWSER_RECYCLE_PAGES = env_int("JOB_BROWSER_RECYCLE_PAGES", 200, minimum=1)
# A job task works this long, then queues itself again (keeping its browser) and frees the slot.
JOB_TASK_SLICE_SECONDS = env_int("JOB_TASK_SLICE_SECONDS", 60, minimum=5)
JOB_RETRY_BACKOFF_SECONDS = env_int("JOB_RETRY_BACKOFF_SECONDS", 2, minimum=0)
# The longest Retry-After a target site may impose on one page before we retry anyway.
JOB_RETRY_AFTER_MAX_SECONDS = env_int("JOB_RETRY_AFTER_MAX_SECONDS", 120, minimum=0)
# A job of 100,000 URLs is a few MB of JSON: a job submit (POST /v1/jobs) may be this large,
# every other request API_MAX_BODY_BYTES (project/middleware.py).
JOB_MAX_BODY_BYTES = env_int("JOB_MAX_BODY_BYTES", 16 * 1024 * 1024, minimum=1024 * 1024)
# A submit looks its URLs' hosts up in the web thread: this many at once, for at most this long
# in all; a host not answered by then is refused as not resolving (jobs/services/submit.py).
JOB_SUBMIT_RESOLVE_SECONDS = env_int("JOB_SUBMIT_RESOLVE_SECONDS", 10, minimum=1)
JOB_SUBMIT_RESOLVE_CONCURRENCY = env_int("JOB_SUBMIT_RESOLVE_CONCURRENCY", 16, minimum=1)
# The most JSON one job item's data keeps (a larger page's item fails `result_too_large`), and
# the most stored bytes an export reads at once.
JOB_ITEM_DATA_MAX_BYTES = env_int("JOB_ITEM_DATA_MAX_BYTES", 2 * 1024 * 1024, minimum=16 * 1024)
JOB_EXPORT_CHUNK_BYTES = env_int("JOB_EXPORT_CHUNK_BYTES", 8 * 1024 * 1024, minimum=1024)

# --- Webhooks (webhooks/, docs/webhooks.md) ----------------------------------------------------
# One delivery attempt: each read waits this long at most; the attempt's task is killed 15 s later.
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10, minimum=1)
# Attempts per delivery; retries wait WEBHOOK_RETRY_BACKOFF_SECONDS x 5^(n-1) (+-20 %), at most
# WEBHOOK_RETRY_MAX_DELAY_SECONDS: with the defaults, about 25 hours of retries.
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 9, minimum=1)
WEBHOOK_RETRY_BACKOFF_SECONDS = env_int("WEBHOOK_RETRY_BACKOFF_SECONDS", 5, minimum=0)
WEBHOOK_RETRY_MAX_DELAY_SECONDS = env_int("WEBHOOK_RETRY_MAX_DELAY_SECONDS", 10 * 3600, minimum=1)
# Beat sends due deliveries (retries, and sends lost to a crash) this often.
WEBHOOK_SWEEP_INTERVAL_SECONDS = env_int("WEBHOOK_SWEEP_INTERVAL_SECONDS", 5, minimum=1)
# A delivery sent to the queue is not sent again by the sweep for this long.
WEBHOOK_QUEUED_LEASE_SECONDS = env_int("WEBHOOK_QUEUED_LEASE_SECONDS", 600, minimum=10)
# Events and their delivery log are kept this long.
WEBHOOK_RETENTION_DAYS = env_int("WEBHOOK_RETENTION_DAYS", 7, minimum=1)
# After a rotation the old secret signs alongside the new one this long.
WEBHOOK_SECRET_OVERLAP_SECONDS = env_int("WEBHOOK_SECRET_OVERLAP_SECONDS", 24 * 3600, minimum=0)
# An endpoint that has not accepted one delivery for this long is disabled.
WEBHOOK_DISABLE_AFTER_DAYS = env_int("WEBHOOK_DISABLE_AFTER_DAYS", 3, minimum=1)

# --- Security ---------------------------------------------------------------------------------
# Largest JSON body the API reads (413 above). A batch of 100 actions fits easily.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 2 * 1024 * 1024, minimum=1024)
# Django's own cap, behind the middleware's per-route one (a body without Content-Length is
# never read), so the larger of the two.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(API_MAX_BODY_BYTES, JOB_MAX_BODY_BYTES)
# Requests of one account that may wait for a result at once (action waits, creates), for plans
# without their own `max_waiting_requests`; more get 429 with Retry-After (0: no limit). A fairness
# rule: a waiting request holds no web thread (project/awaiting.py).
ACCOUNT_MAX_INFLIGHT_REQUESTS = env_int("ACCOUNT_MAX_INFLIGHT_REQUESTS", 8, minimum=0)
AUTH_LOCKOUT_MAX_FAILURES = env_int("AUTH_LOCKOUT_MAX_FAILURES", 10, minimum=1)
AUTH_LOCKOUT_WINDOW_SECONDS = env_int("AUTH_LOCKOUT_WINDOW_SECONDS", 600, minimum=1)
# How many reverse proxies in front of the web append to X-Forwarded-For; the client address is
# the Nth entry from the right (0: REMOTE_ADDR). TRUST_X_FORWARDED_FOR=true is the older spelling
# of 1 (it used to take the leftmost entry, which the client writes).
TRUSTED_PROXY_COUNT = env_int(
    "TRUSTED_PROXY_COUNT", 1 if env_bool("TRUST_X_FORWARDED_FOR", False) else 0, minimum=0
)
# Let browsers visit private, loopback and link-local addresses, never cloud metadata: the navigation
# check and the egress filter alike (project/netpolicy.py). Tests turn it off and list 127.0.0.1.
ALLOW_PRIVATE_NETWORK_TARGETS = env_bool("ALLOW_PRIVATE_NETWORK_TARGETS", _NOT_PRODUCTION)
# Private destinations browsers may reach anyway: CIDRs, address:port or name:port, comma-separated
# (project/netpolicy.py, which the egress filter reads too). Checked at start-up so a typo stops
# the process.
BROWSER_EGRESS_ALLOW = env_list("BROWSER_EGRESS_ALLOW", [])
try:
    parse_egress_allow(BROWSER_EGRESS_ALLOW)
except ValueError as _exc:
    raise ImproperlyConfigured(str(_exc)) from None

# --- The customer console (console/, docs/console.md) ---------------------------------------------
# The console's address as its users reach it: invitation and password-reset emails sent from the
# command line (manage.py add_member) link there.
CONSOLE_BASE_URL = env_str("CONSOLE_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# Console pages (and the overview's refreshes) one signed-in user may load per minute; more: 429.
CONSOLE_REQUESTS_PER_MINUTE = env_int("CONSOLE_REQUESTS_PER_MINUTE", 300, minimum=10)
# The overview refreshes its numbers this often (seconds), without reloading the page.
CONSOLE_REFRESH_SECONDS = env_int("CONSOLE_REFRESH_SECONDS", 5, minimum=1)
# Failed logins (console and admin) by one user name from one address before that pair is locked
# out for CONSOLE_LOGIN_COOLOFF_MINUTES (django-axes; a shared NAT does not lock other users out).
CONSOLE_LOGIN_FAILURE_LIMIT = env_int("CONSOLE_LOGIN_FAILURE_LIMIT", 5, minimum=1)
CONSOLE_LOGIN_COOLOFF_MINUTES = env_int("CONSOLE_LOGIN_COOLOFF_MINUTES", 15, minimum=1)
AXES_FAILURE_LIMIT = CONSOLE_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=CONSOLE_LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "accounts.lockout.client_ip"  # the same client address as the API's lockout
AXES_USERNAME_CALLABLE = "console.views.auth.lockout_username"  # case-folded: one counter per user
AXES_LOCKOUT_TEMPLATE = "console/auth/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
# A console login lasts this long without activity (cookie-based sessions, CSRF on every form).
SESSION_COOKIE_AGE = env_int("CONSOLE_SESSION_SECONDS", 14 * 24 * 3600, minimum=300)
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:overview"
LOGOUT_REDIRECT_URL = "console:login"
# Content-Security-Policy: our own scripts, styles and images only (no inline code, no CDN). The
# admin keeps Django's and the dashboard's inline bits, and Swagger UI its inline start script.
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/admin/", "/v1/docs"],
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        # Stripe Checkout: the Billing page's "Pay with Stripe" form is answered with a redirect
        # there, and browsers hold redirects after a form to form-action.
        "form-action": ["'self'", "https://checkout.stripe.com"],
        "frame-ancestors": ["'none'"],
    },
}

# --- Email (console invitations and password resets; alerts to account owners) -----------------
# Django's mail backend: the console backend prints mails (development); smtp sends them.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Browserfleet <noreply@localhost>")

# --- Operations -------------------------------------------------------------------------------
# GET /metrics answers a request with `Authorization: Bearer <METRICS_TOKEN>` or from an address
# in METRICS_ALLOW_CIDRS (comma-separated networks); with neither set it answers no one.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
METRICS_ALLOW_CIDRS = env_list("METRICS_ALLOW_CIDRS", [])
# The dashboard's 7-day and 30-day charts are kept this long in Redis (0: computed every time).
OPS_CHARTS_CACHE_SECONDS = env_int("OPS_CHARTS_CACHE_SECONDS", 60, minimum=0)
