"""Settings read from the environment, validated at start-up.

=============================  ==================================================  =====================
variable                       meaning                                             default
=============================  ==================================================  =====================
REDIS_URL                      Redis to use (redis://, rediss://, unix://)          embedded server
REPLYGUARD_HOME                where the embedded Redis keeps its socket and data   $XDG_DATA_HOME/replyguard
REPLYGUARD_POLICIES_DIR        brand policies (``<brand>.yaml``)                    ./policies of the checkout
REPLYGUARD_TEMPLATES_DIR       approved templates (``<brand>.yaml``)                ./prompts/templates
REPLYGUARD_SYSTEM_PROMPTS_DIR  LLM system prompts (``<id>.yaml``)                   ./prompts/system
REPLYGUARD_MODELS_DIRS         extra model directories, ``:``-separated,            (none)
                               searched before the shipped classifiers/artifacts;
                               the first is where ``train`` and ``models promote /
                               rollback`` write (without it they need ``--dir``:
                               the shipped directory is read-only)
REPLYGUARD_QUEUE               RQ queue name                                        replyguard
REPLYGUARD_KEY_PREFIX          prefix of replyguard's Redis keys                    rg
REPLYGUARD_BATCH_SIZE          most messages per job                                256
REPLYGUARD_BATCH_WAIT_MS       longest a message waits for its batch to fill        15
                               (longer while every worker is busy: defaults.BATCH_BUSY_*)
REPLYGUARD_LOG_LEVEL           logging level                                        INFO
REPLYGUARD_SESSION_SECRET      key that signs review-app session cookies            random per process
REPLYGUARD_ARCHIVE_DIR         retention archive files (policy ``retention``)        $REPLYGUARD_HOME/archive

REPLYGUARD_META_API_BASE       Graph API base URL (a stand-in in tests)             defaults.META_API_BASE
REPLYGUARD_YOUTUBE_API_BASE    YouTube Data API base URL                            defaults.YOUTUBE_API_BASE
REPLYGUARD_DELIVERY_MODE       dry_run | live: overrides every policy's             (the policy's)
                               ``delivery.mode``
(named by a policy)            LLM API keys: ``llm.providers.*.api_key_env``         (none)
=============================  ==================================================  =====================

``Settings()`` reads these variables (exactly as ``Settings.from_env()`` and the
command line do); keyword arguments override them. A bad value stops start-up
with :class:`~worker.exceptions.ConfigError` naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from worker import defaults
from worker.exceptions import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent

_ENV = {
    "redis_url": "REDIS_URL",
    "home": "REPLYGUARD_HOME",
    "policies_dir": "REPLYGUARD_POLICIES_DIR",
    "templates_dir": "REPLYGUARD_TEMPLATES_DIR",
    "system_prompts_dir": "REPLYGUARD_SYSTEM_PROMPTS_DIR",
    "models_dirs": "REPLYGUARD_MODELS_DIRS",
    "queue": "REPLYGUARD_QUEUE",
    "key_prefix": "REPLYGUARD_KEY_PREFIX",
    "batch_size": "REPLYGUARD_BATCH_SIZE",
    "batch_wait_ms": "REPLYGUARD_BATCH_WAIT_MS",
    "log_level": "REPLYGUARD_LOG_LEVEL",
    "session_secret": "REPLYGUARD_SESSION_SECRET",
    "archive_dir": "REPLYGUARD_ARCHIVE_DIR",
    "meta_api_base": "REPLYGUARD_META_API_BASE",
    "youtube_api_base": "REPLYGUARD_YOUTUBE_API_BASE",
    "delivery_mode": "REPLYGUARD_DELIVERY_MODE",
}


def _read_environ(environ: Mapping[str, str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for field_name, variable in _ENV.items():
        raw = environ.get(variable)
        if raw is None or raw == "":
            continue
        if field_name == "models_dirs":
            values[field_name] = [p for p in raw.split(os.pathsep) if p]
        elif field_name == "log_level":
            values[field_name] = raw.upper()
        else:
            values[field_name] = raw
    return values


def _config_error(exc: ValidationError) -> ConfigError:
    problems = []
    for err in exc.errors(include_url=False):
        name = str(err["loc"][0]) if err["loc"] else "?"
        shown = "(hidden)" if name == "session_secret" else repr(err.get("input"))
        problems.append(f"{_ENV.get(name, name)}: {err['msg']} (got {shown})")
    return ConfigError("invalid settings: " + "; ".join(problems))


def _default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "replyguard"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    redis_url: str | None = None
    home: Path = Field(default_factory=_default_home)
    policies_dir: Path = REPO_ROOT / "policies"
    templates_dir: Path = REPO_ROOT / "prompts" / "templates"
    system_prompts_dir: Path = REPO_ROOT / "prompts" / "system"
    models_dirs: list[Path] = Field(default_factory=list)
    queue: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = defaults.QUEUE_NAME
    key_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")] = defaults.KEY_PREFIX
    batch_size: Annotated[int, Field(ge=1, le=1000)] = defaults.BATCH_SIZE
    batch_wait_ms: Annotated[int, Field(ge=0, le=60_000)] = int(defaults.BATCH_WAIT_SECONDS * 1000)
    log_level: Annotated[str, Field(pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")] = "INFO"
    #: Signs session cookies of the review app (never logged: SecretStr). Unset: a random key per process.
    session_secret: Annotated[SecretStr, Field(min_length=16)] | None = None
    #: Where the retention sweep writes archive files (unset: ``<home>/archive``).
    archive_dir: Path | None = None

    meta_api_base: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] = defaults.META_API_BASE
    youtube_api_base: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] = defaults.YOUTUBE_API_BASE
    delivery_mode: Literal["dry_run", "live"] | None = None

    def __init__(self, **values: Any) -> None:
        """Settings from ``values``, with every other field read from the environment (as the CLI does).

        ``Settings()`` is ``Settings.from_env()``. A bad value raises ConfigError naming the variable.
        """
        environ = values.pop("_environ", None)
        merged = {**_read_environ(os.environ if environ is None else environ), **values}
        try:
            super().__init__(**merged)
        except ValidationError as exc:
            raise _config_error(exc) from exc

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> "Settings":
        """Settings from ``environ`` (default ``os.environ``); ``overrides`` that are not None win."""
        return cls(
            _environ=os.environ if environ is None else environ, **{k: v for k, v in overrides.items() if v is not None}
        )

    @classmethod
    def defaults(cls) -> "Settings":
        """The built-in defaults, ignoring the environment."""
        return cls(_environ={})

    @property
    def archive_path(self) -> Path:
        """The retention archive directory (REPLYGUARD_ARCHIVE_DIR, else ``<home>/archive``)."""
        return self.archive_dir if self.archive_dir is not None else self.home / defaults.ARCHIVE_DIR_NAME

    @property
    def batch_wait_seconds(self) -> float:
        return self.batch_wait_ms / 1000.0

    def redacted_redis_url(self) -> str:
        """REDIS_URL with any password removed, safe for logs."""
        if not self.redis_url:
            return f"embedded (unix socket under {self.home})"
        return redact_url(self.redis_url)


def redact_url(url: str) -> str:
    """Hide the password in ``scheme://user:password@host``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user + ':' if user else ''}***@{host}"
