"""Review-app accounts: users, password hashes, login sessions and sign-in throttling.

A user has one role (:data:`worker.defaults.USER_ROLES`) and the brands they may
see (``*`` = every brand). Passwords are hashed with argon2id (argon2-cffi's
defaults); a password is never stored, logged or passed on a command line.

Sessions live in Redis under the SHA-256 of a random token, so the token itself
(the cookie's value) is never stored; a session expires after
:data:`~worker.defaults.SESSION_TTL_SECONDS` and ends at logout. Every request
re-reads the user, so disabling a user ends their sessions at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

import redis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from worker import defaults
from worker.exceptions import ReplyguardError, StoreError
from worker.models import BRAND_PATTERN
from worker.store import Keys

Role = Literal["moderator", "tier1", "tier2", "sales", "manager", "admin"]
USER_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.@-]{0,63}$"
ALL_BRANDS = "*"

_hasher = PasswordHasher()
#: Verified against when the user does not exist, so a missing user costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


#: One failed login: count it, and start the rate-limit window when the count is new.
_COUNT_FAILURE = """
local n = redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


class AccountError(ReplyguardError):
    """A user cannot be created or changed (the message says why)."""


class User(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(pattern=USER_NAME_PATTERN)]
    role: Role
    brands: list[str] = Field(min_length=1)
    disabled: bool = False
    password_hash: str
    created_at: datetime
    disabled_at: datetime | None = None

    @field_validator("brands")
    @classmethod
    def _brands(cls, value: list[str]) -> list[str]:
        for brand in value:
            if brand != ALL_BRANDS and not re.match(BRAND_PATTERN, brand):
                raise ValueError(f"{brand!r} is not a brand name (lowercase letters, digits, - and _) or '*'")
        return sorted(set(value))

    def may_see(self, brand: str) -> bool:
        return ALL_BRANDS in self.brands or brand in self.brands

    def visible(self, brands: list[str]) -> list[str]:
        """Those of ``brands`` this user may see."""
        return [b for b in brands if self.may_see(b)]

    @property
    def moderates(self) -> bool:
        return self.role in defaults.MODERATION_ROLES

    def public(self) -> dict[str, object]:
        """The user without the password hash (for listings and JSON)."""
        return self.model_dump(mode="json", exclude={"password_hash"})


@dataclass(frozen=True)
class Session:
    user: str
    csrf: str
    created_at: float


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    """Users and sessions in Redis."""

    def __init__(self, client: redis.Redis, prefix: str = defaults.KEY_PREFIX):
        self.client: Any = client  # redis-py types replies as sync-or-async unions; ours are sync bytes
        self.keys = Keys(prefix)

    # -- users ------------------------------------------------------------------------

    def add(self, name: str, password: str, role: str, brands: list[str], *, replace: bool = False) -> User:
        if len(password) < defaults.PASSWORD_MIN_CHARS:
            raise AccountError(f"password: must be at least {defaults.PASSWORD_MIN_CHARS} characters")
        try:
            user = User.model_validate(
                {
                    "name": name,
                    "role": role,
                    "brands": brands,  # role: checked here
                    "password_hash": _hasher.hash(password),
                    "created_at": datetime.now(timezone.utc),
                }
            )
        except ValidationError as exc:
            reasons = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'user'}: {e['msg']}" for e in exc.errors(include_url=False)
            )
            raise AccountError(f"user {name!r}: {reasons}") from exc
        try:
            created = self.client.set(self.keys.user(name), user.model_dump_json(), nx=not replace)
            if not created:
                raise AccountError(
                    f"user {name!r} already exists (use --replace to set a new password, role and brands)"
                )
            self.client.sadd(self.keys.users, name)
        except redis.RedisError as exc:
            raise StoreError(f"Redis failed while saving user {name!r}: {exc}") from exc
        return user

    def get(self, name: str) -> User | None:
        try:
            raw = self.client.get(self.keys.user(name))
        except redis.RedisError as exc:
            raise StoreError(f"Redis failed while reading user {name!r}: {exc}") from exc
        return User.model_validate_json(raw) if raw else None

    def all(self) -> list[User]:
        try:
            names = sorted(n.decode() for n in self.client.smembers(self.keys.users))
            raws = self.client.mget([self.keys.user(n) for n in names]) if names else []
        except redis.RedisError as exc:
            raise StoreError(f"Redis failed while listing users: {exc}") from exc
        return [User.model_validate_json(r) for r in raws if r]

    def set_disabled(self, name: str, disabled: bool = True) -> User:
        user = self.get(name)
        if user is None:
            raise AccountError(f"no user {name!r}")
        user.disabled = disabled
        user.disabled_at = datetime.now(timezone.utc) if disabled else None
        try:
            self.client.set(self.keys.user(name), user.model_dump_json())
        except redis.RedisError as exc:
            raise StoreError(f"Redis failed while saving user {name!r}: {exc}") from exc
        return user

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs and they are enabled; else None (same cost either way)."""
        user = self.get(name) if name else None
        try:
            _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if user is None or user.disabled:
            return None
        return user

    # -- sign-in throttling -----------------------------------------------------------

    def login_blocked(self, name: str, address: str) -> int:
        """Seconds until sign-in may be tried again for this name or address (0 = allowed)."""
        checks = (
            (f"user:{name}", defaults.LOGIN_MAX_FAILURES_PER_USER),
            (f"addr:{address}", defaults.LOGIN_MAX_FAILURES_PER_ADDRESS),
        )
        pipe = self.client.pipeline(transaction=False)
        for scope, _ in checks:
            pipe.get(self.keys.login_failures(scope))
            pipe.ttl(self.keys.login_failures(scope))
        replies = pipe.execute()
        wait = 0
        for i, (_, limit) in enumerate(checks):
            count, ttl = replies[2 * i], replies[2 * i + 1]
            if count is not None and int(count) >= limit:
                wait = max(wait, ttl if ttl and ttl > 0 else defaults.LOGIN_WINDOW_SECONDS)
        return wait

    def login_failed(self, name: str, address: str) -> None:
        # INCR, and start the window on the first failure only (EXPIRE NX needs Redis 7;
        # the embedded server is 6.2, so the check is done in the same Lua call).
        for scope in (f"user:{name}", f"addr:{address}"):
            self.client.eval(_COUNT_FAILURE, 1, self.keys.login_failures(scope), defaults.LOGIN_WINDOW_SECONDS)

    def login_succeeded(self, name: str) -> None:
        self.client.delete(self.keys.login_failures(f"user:{name}"))

    # -- sessions ---------------------------------------------------------------------

    def start_session(self, user: User) -> tuple[str, Session]:
        """A new session for ``user``: returns (token for the cookie, session)."""
        token = secrets.token_urlsafe(32)
        session = Session(
            user=user.name, csrf=secrets.token_urlsafe(32), created_at=datetime.now(timezone.utc).timestamp()
        )
        self.client.set(self.keys.session(_sha(token)), json.dumps(session.__dict__), ex=defaults.SESSION_TTL_SECONDS)
        return token, session

    def session(self, token: str) -> Session | None:
        raw = self.client.get(self.keys.session(_sha(token)))
        if not raw:
            return None
        data = json.loads(raw)
        return Session(user=data["user"], csrf=data["csrf"], created_at=data["created_at"])

    def end_session(self, token: str) -> None:
        self.client.delete(self.keys.session(_sha(token)))


def sign(secret: bytes, value: str) -> str:
    """``value.signature`` (HMAC-SHA256, URL-safe hex) for a cookie."""
    mac = hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()
    return f"{value}.{mac}"


def unsign(secret: bytes, signed: str) -> str | None:
    """The value if the signature is right, else None (constant-time comparison)."""
    value, _, mac = signed.rpartition(".")
    if not value or not mac:
        return None
    expected = hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()
    return value if hmac.compare_digest(expected, mac) else None
