"""Calls to OpenAI-compatible servers, made safe for a pipeline that must never wait on them.

Every call goes through, in order: the provider's **circuit breaker** (shared by all
workers through Redis; it opens after ``circuit_failures`` consecutive failed
calls and lets one trial call through after ``circuit_cooldown_seconds``), the
brand's **monthly token budget**, and a **concurrency limit** per provider (a
Redis semaphore). The request itself uses the ``openai`` package with a per-attempt
timeout; 429 and 5xx answers and connection errors are retried with exponential
backoff, honouring ``Retry-After``.

A call returns an :class:`LLMResult` or raises :class:`LLMUnavailable` whose
``reason`` is one stable code, recorded in the decision and counted in stats:

``circuit_open`` ``budget_exhausted`` ``concurrency_limit`` ``missing_api_key``
``timeout`` ``rate_limited`` ``server_error`` ``connection_error`` ``auth_error``
``bad_request`` ``not_supported`` ``bad_response``

API keys are read from the environment variable the policy names, passed to the
client, and never logged, stored or put into an exception message.

The ``openai`` package (~13 MB of Python objects) is imported on first use (:func:`openai_package`):
a worker whose brands use no LLM never imports it; one whose brands do imports it in the parent before
the worker processes are forked (``worker.brands``), so that they share it.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import random
import ssl
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import redis

from worker.exceptions import ReplyguardError
from worker.policy import LLMProvider
from worker.store import Keys

if TYPE_CHECKING:
    import openai

#: Longest Retry-After replyguard will honour; a server asking for more is treated as unavailable.
MAX_RETRY_AFTER_SECONDS = 30.0
#: Longest wait for a concurrency slot before giving up with ``concurrency_limit``.
SLOT_WAIT_SECONDS = 2.0
#: Latency histogram buckets (seconds) for Prometheus.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30)

RETRYABLE = {"timeout", "rate_limited", "server_error", "connection_error"}


class LLMUnavailable(ReplyguardError):
    """The LLM could not be used for this message; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str = "", attempts: int = 0, latency_ms: float = 0.0):
        self.reason = reason
        self.detail = detail
        self.attempts = attempts
        self.latency_ms = latency_ms
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass
class LLMResult:
    text: str
    tokens_in: int
    tokens_out: int
    latency_ms: float
    attempts: int
    model: str
    raw: Any = field(default=None, repr=False)


def host_of(base_url: str) -> str:
    """Scheme and host of a base URL, for records and metrics (no path, query or credentials)."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}"


def openai_package() -> Any:
    """The ``openai`` package, imported now if it was not (see the module doc)."""
    import openai

    return openai


def _retry_after(exc: openai.APIStatusError) -> float | None:
    headers = getattr(exc.response, "headers", None) or {}
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None  # unparseable: fall back to our own backoff
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return max(0.0, (parsed - datetime.now(timezone.utc)).total_seconds())


def _classify(exc: Exception) -> tuple[str, float | None]:
    """Map an openai exception to (reason, retry-after seconds)."""
    openai = openai_package()
    if isinstance(exc, openai.APITimeoutError):
        return "timeout", None
    if isinstance(exc, openai.APIConnectionError):
        return "connection_error", None
    if isinstance(exc, openai.RateLimitError):
        return "rate_limited", _retry_after(exc)
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return "auth_error", None
    if isinstance(exc, openai.NotFoundError):
        return "not_supported", None
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500:
            return "server_error", _retry_after(exc)
        return "bad_request", None
    if isinstance(exc, (openai.APIResponseValidationError, ValueError, KeyError, TypeError)):
        return "bad_response", None
    return "bad_response", None


_SEMAPHORE_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
"""


class ProviderGuard:
    """Shared (Redis) state of one provider: circuit breaker and concurrency slots."""

    def __init__(self, client: redis.Redis, prefix: str, name: str, provider: LLMProvider):
        self.redis = client
        self.provider = provider
        ident = hashlib.sha256(f"{name}|{provider.base_url}".encode()).hexdigest()[:12]
        keys = Keys(prefix)
        self.circuit_key = keys.llm_circuit(ident)
        self.trial_key = keys.llm_circuit_trial(ident)
        self.slots_key = keys.llm_inflight(ident)
        self._acquire = client.register_script(_SEMAPHORE_ACQUIRE)

    # circuit breaker ------------------------------------------------------------------
    def admit(self) -> None:
        """Raise circuit_open unless the circuit is closed or this call is the half-open trial."""
        opened_until = self.redis.hget(self.circuit_key, "open_until")
        if opened_until is None:
            return
        if time.time() < float(opened_until):
            raise LLMUnavailable("circuit_open", f"{host_of(self.provider.base_url)} failed repeatedly; cooling down")
        # cooled down: one trial call at a time
        if not self.redis.set(self.trial_key, "1", nx=True, ex=int(self.provider.timeout_seconds * 2) + 1):
            raise LLMUnavailable("circuit_open", "a trial call is already testing the provider")

    def succeeded(self) -> None:
        self.redis.delete(self.circuit_key, self.trial_key)

    def failed(self) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hincrby(self.circuit_key, "failures", 1)
        pipe.hget(self.circuit_key, "open_until")
        failures, opened = pipe.execute()
        if opened is not None or failures >= self.provider.circuit_failures:
            self.redis.hset(self.circuit_key, "open_until", time.time() + self.provider.circuit_cooldown_seconds)
        self.redis.delete(self.trial_key)
        self.redis.expire(self.circuit_key, int(self.provider.circuit_cooldown_seconds * 10) + 60)

    def state(self) -> str:
        opened_until = self.redis.hget(self.circuit_key, "open_until")
        if opened_until is None:
            return "closed"
        return "open" if time.time() < float(opened_until) else "half-open"

    # concurrency ------------------------------------------------------------------------
    def release_trial(self) -> None:
        self.redis.delete(self.trial_key)

    def acquire(self, wait: float = SLOT_WAIT_SECONDS) -> str:
        token = uuid.uuid4().hex
        # a slot outlives the longest call: every attempt's timeout plus every allowed wait between them
        retries = self.provider.max_retries
        ttl = self.provider.timeout_seconds * (retries + 1) + retries * MAX_RETRY_AFTER_SECONDS + 10
        deadline = time.monotonic() + wait
        while True:
            now = time.time()
            if self._acquire(
                keys=[self.slots_key], args=[now, self.provider.concurrency, now + ttl, token, int(ttl) + 5]
            ):
                return token
            if time.monotonic() >= deadline:
                raise LLMUnavailable("concurrency_limit", f"{self.provider.concurrency} calls already in flight")
            time.sleep(0.05)

    def release(self, token: str) -> None:
        self.redis.zrem(self.slots_key, token)


def budget_key(prefix: str, brand: str, when: datetime | None = None) -> str:
    when = when or datetime.now(timezone.utc)
    return Keys(prefix).llm_tokens(brand, f"{when:%Y-%m}")


_TLS: list[ssl.SSLContext] = []


def _tls_context() -> ssl.SSLContext:
    """One TLS context per process for every LLM client (httpx's default: certifi's CA bundle, or
    SSL_CERT_FILE / SSL_CERT_DIR). A client is made for every LLM task, and building a context reads
    the whole CA bundle: ~0.1 s of CPU each time."""
    if not _TLS:
        _TLS.append(httpx.create_ssl_context())
    return _TLS[0]


class LLMClient:
    """One provider, used on behalf of one brand."""

    def __init__(
        self, connection: redis.Redis, prefix: str, brand: str, name: str, provider: LLMProvider, *, sleep=time.sleep
    ):
        self.redis = connection
        self.prefix = prefix
        self.brand = brand
        self.name = name
        self.provider = provider
        self.guard = ProviderGuard(connection, prefix, name, provider)
        self._sleep = sleep
        self._client: openai.OpenAI | None = None

    @property
    def host(self) -> str:
        return host_of(self.provider.base_url)

    def _openai(self) -> openai.OpenAI:
        if self._client is None:
            key = None
            if self.provider.api_key_env:
                key = os.environ.get(self.provider.api_key_env)
                if not key:
                    raise LLMUnavailable(
                        "missing_api_key", f"environment variable {self.provider.api_key_env} is not set"
                    )
            headers = {}
            if self.provider.api_key_header and key:
                headers[self.provider.api_key_header] = key
            openai = openai_package()
            self._client = openai.OpenAI(
                api_key=key or "unused",
                base_url=self.provider.base_url,
                timeout=self.provider.timeout_seconds,
                max_retries=0,  # retries are ours: counted, bounded, circuit-aware
                default_headers=headers or None,
                default_query=self.provider.default_query or None,
                http_client=openai.DefaultHttpxClient(verify=_tls_context()),
            )
        return self._client

    def _budget_left(self) -> None:
        used = int(self.redis.get(budget_key(self.prefix, self.brand)) or 0)
        if used >= self.provider.monthly_token_budget:
            raise LLMUnavailable(
                "budget_exhausted", f"{used} of {self.provider.monthly_token_budget} tokens used this month"
            )

    def _spend(self, tokens: int) -> None:
        key = budget_key(self.prefix, self.brand)
        pipe = self.redis.pipeline(transaction=False)
        pipe.incrby(key, tokens)
        pipe.expire(key, 40 * 24 * 3600)
        pipe.execute()

    def _call(self, request) -> tuple[Any, int, float]:
        """Run ``request(client)`` with admission control and retries. Returns (response, attempts, ms)."""
        self.guard.admit()
        try:
            self._budget_left()
            client = self._openai()
            token = self.guard.acquire()
        except LLMUnavailable:
            self.guard.release_trial()  # this call never reached the provider: let another try
            raise
        started = time.perf_counter()
        attempts = 0
        try:
            while True:
                attempts += 1
                try:
                    response = request(client)
                except Exception as exc:  # noqa: BLE001 - every failure becomes a stable reason
                    reason, retry_after = _classify(exc)
                    elapsed = time.perf_counter() - started
                    last = attempts > self.provider.max_retries or reason not in RETRYABLE
                    if retry_after is not None and retry_after > MAX_RETRY_AFTER_SECONDS:
                        last = True
                    if last:
                        if reason in RETRYABLE:
                            self.guard.failed()
                        raise LLMUnavailable(reason, _describe(exc), attempts, elapsed * 1000) from None
                    wait = retry_after if retry_after is not None else min(8.0, 0.25 * 2 ** (attempts - 1))
                    self._sleep(wait * (1 if retry_after is not None else random.uniform(0.8, 1.2)))
                    continue
                self.guard.succeeded()
                return response, attempts, (time.perf_counter() - started) * 1000
        finally:
            self.guard.release(token)

    def chat(
        self,
        messages: list[dict[str, str]],
        *,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> LLMResult:
        model = model or self.provider.model
        kwargs: dict[str, Any] = {"model": model, "messages": messages}
        if temperature is not None:
            kwargs["temperature"] = temperature
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if response_format is not None:
            kwargs["response_format"] = response_format
        response, attempts, ms = self._call(lambda c: c.chat.completions.create(**kwargs))
        try:
            text = response.choices[0].message.content or ""
        except (AttributeError, IndexError, TypeError) as exc:
            raise LLMUnavailable("bad_response", "no message in the completion", attempts, ms) from exc
        usage = getattr(response, "usage", None)
        tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
        tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
        self._spend(tokens_in + tokens_out)
        return LLMResult(
            text=text,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            latency_ms=ms,
            attempts=attempts,
            model=str(getattr(response, "model", None) or model),
            raw=response,
        )

    def moderate(self, text: str, *, model: str | None = None) -> tuple[dict[str, float], bool, int, float]:
        """(category scores, flagged, attempts, ms) from the server's moderation endpoint."""
        kwargs: dict[str, Any] = {"input": text}
        if model:
            kwargs["model"] = model
        response, attempts, ms = self._call(lambda c: c.moderations.create(**kwargs))
        try:
            result = response.results[0]
            scores = {k: float(v) for k, v in result.category_scores.model_dump().items() if v is not None}
            return scores, bool(result.flagged), attempts, ms
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise LLMUnavailable("bad_response", "malformed moderation result", attempts, ms) from exc


def _describe(exc: Exception) -> str:
    """A short description of an API failure that cannot contain the API key."""
    status = getattr(exc, "status_code", None)
    kind = type(exc).__name__
    return f"{kind} (HTTP {status})" if status else kind
