"""Settings for the chat platform: every knob comes from the environment with a safe default."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.management.utils import get_random_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean environment variable; '1', 'true', 'yes', 'on' mean true."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    """Read an integer environment variable, falling back to the default when unset or blank."""
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def env_list(name: str, default: str = "") -> list[str]:
    """Read a comma-separated environment variable into a list of trimmed items."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _secret_key() -> str:
    """Use SECRET_KEY from the environment, else a key generated once and kept beside the checkout."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    key_file = BASE_DIR / ".secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    key = get_random_secret_key()
    try:
        key_file.write_text(key)
        key_file.chmod(0o600)
    except OSError:
        pass
    return key


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "http://127.0.0.1:8000,http://localhost:8000")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "chat",
    "models_mgmt",
    "ops",
    "learning",
    "compat",
    "search",
]

MIDDLEWARE = [
    "chatproject.middleware.RequestIdMiddleware",
    "chatproject.middleware.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "servestatic.middleware.ServeStaticMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "chatproject.middleware.ContentSecurityPolicyMiddleware",
]

# The chat pages load scripts and styles only from this origin and talk only to it (HTTP and WebSocket).
CSP_POLICY = os.environ.get(
    "CSP_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)
CSP_EXEMPT_PREFIXES = ["/api/", "/admin/", "/api-auth/"]

ROOT_URLCONF = "chatproject.urls"
ASGI_APPLICATION = "chatproject.asgi.application"
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
                "ops.context_processors.panic",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 600),
        conn_health_checks=True,
    )
}
if "postgresql" in DATABASES["default"]["ENGINE"] and env_bool("DB_POOL", True):
    # Under ASGI each request's sync code runs on a thread of its own, so Django's docs advise a pool over
    # persistent connections: it bounds a worker's connections and lends them to every thread.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env_int("DB_POOL_MIN_SIZE", 2),
        "max_size": env_int("DB_POOL_MAX_SIZE", 20),
        "timeout": env_int("DB_POOL_TIMEOUT", 10),
    }

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the streaming writer and readers share the file without "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            # NORMAL is durable against crashes of this process in WAL mode; only power loss can drop
            # the very last commits.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )

REDIS_URL = os.environ.get("REDIS_URL", "").strip()

if REDIS_URL:
    # Redis pub/sub by default: one PUBLISH per group message, where the list-based core layer runs a Lua
    # script per send and a BRPOP per receive; REDIS_CHANNEL_LAYER=core selects that one.
    if os.environ.get("REDIS_CHANNEL_LAYER", "pubsub") == "core":
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [REDIS_URL], "capacity": 5000, "expiry": 30},
            }
        }
    else:
        CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                                      "CONFIG": {"hosts": [REDIS_URL]}}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 5000}}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/signin/"
LOGIN_REDIRECT_URL = "/chat/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve app and package static files straight from their folders, so no collectstatic step is needed.
SERVESTATIC_USE_FINDERS = True
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Email: console by default, SMTP when EMAIL_HOST is set.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "chat@localhost")
# Absolute links in emails (password reset, verification) start with this.
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

# Accounts
SIGNUP_MODE = os.environ.get("SIGNUP_MODE", "open")  # open | waitlist | invite
DEFAULT_TEAM_NAME = os.environ.get("DEFAULT_TEAM_NAME", "Default")
# New sign-ups join the default team as members (the instance is one team unless teams are created).
DEFAULT_TEAM_AUTO_JOIN = env_bool("DEFAULT_TEAM_AUTO_JOIN", True)
EMAIL_VERIFICATION_MAX_AGE = env_int("EMAIL_VERIFICATION_MAX_AGE", 3 * 24 * 3600)
TEAM_INVITE_MAX_AGE = env_int("TEAM_INVITE_MAX_AGE", 7 * 24 * 3600)
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 3 * 24 * 3600)

# Limits (spec section 10).
ROOM_NAME_MAX_CHARS = env_int("ROOM_NAME_MAX_CHARS", 100)
ROOM_METADATA_MAX_BYTES = env_int("ROOM_METADATA_MAX_BYTES", 10 * 1024)
ROOMS_PER_USER = env_int("ROOMS_PER_USER", 50)
MESSAGE_MAX_CHARS = env_int("MESSAGE_MAX_CHARS", 32_000)
STREAMS_PER_USER = env_int("STREAMS_PER_USER", 5)
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 20 * 1024 * 1024)
SESSION_TTL_SECONDS = env_int("SESSION_TTL_SECONDS", 30 * 60)
SESSION_IDLE_SECONDS = env_int("SESSION_IDLE_SECONDS", 10 * 60)
INACTIVE_ROOM_DAYS = env_int("INACTIVE_ROOM_DAYS", 30)
IMPORT_MAX_MESSAGES = env_int("IMPORT_MAX_MESSAGES", 5000)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 25 * 1024 * 1024)

# Model providers (spec section 6).
LOCAL_MODELS_ENABLED = env_bool("LOCAL_MODELS_ENABLED", True)
MODELS_DIR = Path(os.environ.get("MODELS_DIR", BASE_DIR / "models"))
LOCAL_N_CTX = env_int("LOCAL_N_CTX", 2048)
LOCAL_N_THREADS = env_int("LOCAL_N_THREADS", 0) or None
OLLAMA_URLS = env_list("OLLAMA_URLS")
OLLAMA_KEEP_ALIVE = os.environ.get("OLLAMA_KEEP_ALIVE", "")
OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL", "").strip()
OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")
OPENAI_CONTEXT_LENGTH = env_int("OPENAI_CONTEXT_LENGTH", 4096)
OPENAI_SEND_EXTRA_OPTIONS = env_bool("OPENAI_SEND_EXTRA_OPTIONS", True)
DEFAULT_MODEL = os.environ.get("DEFAULT_MODEL", "").strip()
MODEL_LIST_TTL_SECONDS = env_int("MODEL_LIST_TTL_SECONDS", 15)
MODEL_SERVER_TIMEOUT_SECONDS = float(os.environ.get("MODEL_SERVER_TIMEOUT_SECONDS", "2"))
OLLAMA_NUM_CTX = env_int("OLLAMA_NUM_CTX", 4096)
MODEL_MEMORY_BUDGET = os.environ.get("MODEL_MEMORY_BUDGET", "75%")
HOT_SLOT_CHECK_SECONDS = env_int("HOT_SLOT_CHECK_SECONDS", 10)
# A local `ollama serve` this app starts and stops (unset: Ollama servers are run outside it). It listens on
# OLLAMA_MANAGED_URL, by default the first of OLLAMA_URLS (which it joins when empty).
OLLAMA_BINARY = os.environ.get("OLLAMA_BINARY", "").strip()
OLLAMA_MANAGED_URL = os.environ.get("OLLAMA_MANAGED_URL", "").strip()
if OLLAMA_BINARY and not OLLAMA_URLS:
    OLLAMA_URLS = [OLLAMA_MANAGED_URL or "http://127.0.0.1:11434"]
OLLAMA_RUN_DIR = Path(os.environ.get("OLLAMA_RUN_DIR", BASE_DIR / "var" / "ollama"))
OLLAMA_START_TIMEOUT_SECONDS = float(os.environ.get("OLLAMA_START_TIMEOUT_SECONDS", "30"))
OLLAMA_STOP_TIMEOUT_SECONDS = float(os.environ.get("OLLAMA_STOP_TIMEOUT_SECONDS", "10"))
DEFAULT_MAX_TOKENS = env_int("DEFAULT_MAX_TOKENS", 512)

# Embeddings, search and RAG (spec section 7).
EMBEDDING_ENGINE = os.environ.get("EMBEDDING_ENGINE", "sentence-transformers")  # | ollama | openai
EMBEDDING_MODEL = os.environ.get("EMBEDDING_MODEL", "")  # empty: the engine's default (bundled MiniLM)
EMBEDDING_DEVICE = os.environ.get("EMBEDDING_DEVICE", "auto")  # auto: mps, then cuda, then cpu
EMBEDDING_BATCH_SIZE = env_int("EMBEDDING_BATCH_SIZE", 32)
# CPU threads the local engine may use; few by default, so background indexing leaves the cores to replies.
EMBEDDING_THREADS = env_int("EMBEDDING_THREADS", max(1, (os.cpu_count() or 2) // 4))
EMBEDDING_MAX_TOKENS = env_int("EMBEDDING_MAX_TOKENS", 512)
EMBEDDING_OLLAMA_URL = os.environ.get("EMBEDDING_OLLAMA_URL", "").strip()
EMBEDDING_OPENAI_BASE_URL = os.environ.get("EMBEDDING_OPENAI_BASE_URL", "").strip()
EMBEDDING_OPENAI_API_KEY = os.environ.get("EMBEDDING_OPENAI_API_KEY", "")
SEARCH_INDEXING = env_bool("SEARCH_INDEXING", True)  # index messages and files in the background
# The indexing thread waits this long after the last message it was handed, so it never embeds during a start.
SEARCH_INDEX_DELAY_SECONDS = float(os.environ.get("SEARCH_INDEX_DELAY_SECONDS", "0.5"))
SEARCH_INDEX_NICE = env_int("SEARCH_INDEX_NICE", 10)  # the indexing thread's niceness (0: same as the server)
# Load the embedding model when a worker starts, before it serves: a first load on a serving worker holds the
# GIL for seconds (imports, weights) and starves its event loop.
EMBEDDING_PRELOAD = env_bool("EMBEDDING_PRELOAD", SEARCH_INDEXING)
SEARCH_CHUNK_TOKENS = env_int("SEARCH_CHUNK_TOKENS", 500)
SEARCH_CHUNK_OVERLAP_TOKENS = env_int("SEARCH_CHUNK_OVERLAP_TOKENS", 50)
# Rows less similar than this to the query are not vector hits (MiniLM puts unrelated texts near 0).
SEARCH_MIN_SIMILARITY = float(os.environ.get("SEARCH_MIN_SIMILARITY", "0.15"))
# Vectors a worker keeps in memory for search (about 390 bytes each with MiniLM); past this it keeps only the
# rows the current search needs.
SEARCH_VECTOR_CACHE_ROWS = env_int("SEARCH_VECTOR_CACHE_ROWS", 500_000)
RAG_CONTEXT_TOKENS = env_int("RAG_CONTEXT_TOKENS", 1024)  # most a reply's prompt gives to file passages
RAG_MAX_CHUNKS = env_int("RAG_MAX_CHUNKS", 4)
RAG_MIN_SCORE = float(os.environ.get("RAG_MIN_SCORE", "0.3"))  # cosine similarity below which nothing is cited

# Streaming (spec section 5).
STREAM_FLUSH_SECONDS = float(os.environ.get("STREAM_FLUSH_SECONDS", "0.5"))
# Threads (each with its own database connection) that write replies' ends side by side.
STREAM_END_WRITERS = env_int("STREAM_END_WRITERS", 4)
APP_VERSION = "0.1.0"
# Each readiness check (database, channel layer, a model backend) gives up after this long.
PROBE_TIMEOUT_SECONDS = float(os.environ.get("PROBE_TIMEOUT_SECONDS", "2"))
# How long a worker may trust its cached reading of the panic switch (the switch updates the cache at once).
PANIC_CACHE_SECONDS = float(os.environ.get("PANIC_CACHE_SECONDS", "2"))
# `/metrics`: open to loopback clients unless turned off; any client with `Authorization: Bearer <METRICS_TOKEN>`.
METRICS_LOOPBACK_OPEN = env_bool("METRICS_LOOPBACK_OPEN", True)
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# Tokens handed out by sign-up and login expire after this many days (0: never), so they do not pile up;
# tokens made on the settings page keep the expiry chosen there.
SIGN_IN_TOKEN_DAYS = env_int("SIGN_IN_TOKEN_DAYS", 30)
# Performance and system samples older than this many days are deleted (when system samples are taken, and by
# `manage.py prune_performance`); 0 keeps them forever.
PERFORMANCE_RETENTION_DAYS = env_int("PERFORMANCE_RETENTION_DAYS", 30)
# At most one system sample (CPU, memory, load, temperature) per this many seconds, across all workers.
SYSTEM_SAMPLE_SECONDS = env_int("SYSTEM_SAMPLE_SECONDS", 60)
# While replies start, running replies pause reading for at most this long (0: never): first tokens first.
STREAM_START_PRIORITY_MS = env_int("STREAM_START_PRIORITY_MS", 50)
# ASGI workers freeze their start-up objects out of the garbage collector (chatproject/asgi.py).
GC_TUNING = env_bool("GC_TUNING", True)
GC_GEN0_THRESHOLD = env_int("GC_GEN0_THRESHOLD", 20000)
STREAM_HEARTBEAT_TIMEOUT_SECONDS = env_int("STREAM_HEARTBEAT_TIMEOUT_SECONDS", 15)

# Proxies in front of the app that append to X-Forwarded-For (0: ignore the header, REMOTE_ADDR is the client).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
# Failed logins for one account (from any IP) before further attempts get 429 for the rest of the window.
LOGIN_FAILURES_PER_ACCOUNT = env_int("LOGIN_FAILURES_PER_ACCOUNT", 10)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 900)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "chatproject.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "chatproject.throttling.PerIPRateThrottle",
        "chatproject.throttling.PerUserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "ip": os.environ.get("THROTTLE_IP_RATE", "600/min"),
        "user": os.environ.get("THROTTLE_USER_RATE", "600/min"),
        "auth": os.environ.get("THROTTLE_AUTH_RATE", "20/min"),
    },
    "DEFAULT_PAGINATION_CLASS": "chatproject.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "chatproject.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "chatproject.schema.ApiAutoSchema",
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Local LLM Chat API",
    "DESCRIPTION": "Self-hosted chat platform for local LLMs. Errors are {error: {code, message, details}}.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1|/v1|/ollama/api",
    # Swagger UI and ReDoc are served from this server, not a CDN, so the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "TeamRoleEnum": "accounts.models.Role",
        "MessageRoleEnum": "chat.models.MessageRole",
        "MessageStatusEnum": "chat.models.MessageStatus",
        "MessageFinishReasonEnum": "chat.models.FinishReason",
        "FinishReasonEnum": ["stop", "length"],
    },
    "TAGS": [
        {"name": "auth", "description": "Accounts, login, tokens"},
        {"name": "teams", "description": "Teams and members"},
        {"name": "admin", "description": "User administration (staff)"},
        {"name": "rooms", "description": "Rooms (conversations)"},
        {"name": "projects", "description": "Folders of rooms"},
        {"name": "sessions", "description": "Live chat sessions bound to a room"},
        {"name": "chat", "description": "Chat contract"},
        {"name": "chat-public", "description": "Chat contract, no login needed"},
        {"name": "openai-compatible", "description": "OpenAI-compatible API (not built yet: 501)"},
        {"name": "ollama-compatible", "description": "Ollama-compatible API (not built yet: 501)"},
        {"name": "operations", "description": "Health, readiness and metrics (not built yet: 501)"},
    ],
}

# Every line carries the request id; LOG_FORMAT=json writes one JSON object per line. The server's own loggers
# (Uvicorn's access log shows WebSocket URLs with `?token=`) go through the same scrubbing handler.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "chatproject.logs.RequestIdFilter"},
        "redact": {"()": "chatproject.logs.RedactSecretsFilter"},
    },
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["request_id", "redact"],
                    "formatter": "json" if LOG_FORMAT == "json" else "text"},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        **{name: {"handlers": ["console"], "propagate": False}
           for name in ("uvicorn", "uvicorn.access", "uvicorn.error", "daphne")},
    },
}
