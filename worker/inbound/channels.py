"""Which brand an inbound request belongs to, and the secrets that prove it.

Built once at start-up from the brands' ``channels`` and ``api`` sections and the
environment (:func:`inbound_auth`). Secrets are read from the variables the policies
name, kept in this process's memory only, never logged or stored; a variable a policy
names but the environment lacks is logged by *name*, and requests needing it are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from worker.inbound.meta import Routing

log = logging.getLogger("replyguard.channels")

#: Channels whose webhooks arrive at /webhooks/meta.
META_PLATFORMS = ("whatsapp", "messenger", "instagram", "facebook")


def _hex_equal(expected: bytes, given: str) -> bool:
    return hmac.compare_digest(expected, given.strip().lower().encode("ascii", "replace"))


@dataclass
class MetaSecrets:
    """App secrets (by variable name) and verify tokens of every brand's Meta channels."""

    app_secrets: dict[str, bytes] = field(default_factory=dict)  # variable name -> secret
    verify_tokens: list[bytes] = field(default_factory=list)
    secret_env: dict[tuple[str, str], str] = field(default_factory=dict)  # (brand, platform) -> variable name

    def signer(self, body: bytes, header: str | None) -> str | None:
        """Name of the variable whose app secret signed ``body`` (``sha256=<hex>``), or None."""
        if not header or not header.startswith("sha256="):
            return None
        found = None
        for name, secret in self.app_secrets.items():  # every secret is tried: timing does not tell which
            if _hex_equal(hmac.new(secret, body, hashlib.sha256).hexdigest().encode(), header[7:]):
                found = name
        return found

    def verify_token_ok(self, token: str | None) -> bool:
        ok = False
        for expected in self.verify_tokens:
            ok |= hmac.compare_digest(expected, (token or "").encode("utf-8", "replace"))
        return ok and bool(token)

    def secret_env_of(self, brand: str, platform: str) -> str | None:
        return self.secret_env.get((brand, platform))


@dataclass
class ApiKeys:
    """Bearer tokens and signing secrets of ``POST /v1/events``, per brand."""

    tokens: dict[str, bytes] = field(default_factory=dict)
    signing: dict[str, bytes] = field(default_factory=dict)

    def brand_for_token(self, token: str) -> str | None:
        found = None
        given = token.encode("utf-8", "replace")
        for brand, expected in self.tokens.items():
            if hmac.compare_digest(expected, given):
                found = brand
        return found

    def signature_ok(self, brand: str, message: bytes, given_hex: str) -> bool:
        secret = self.signing.get(brand)
        if secret is None:
            return False
        return _hex_equal(hmac.new(secret, message, hashlib.sha256).hexdigest().encode(), given_hex)


@dataclass
class InboundAuth:
    routing: Routing
    meta: MetaSecrets
    api: ApiKeys


def inbound_auth(
    brands: Mapping[str, Any], environ: Mapping[str, str] | None = None, *, read_secrets: bool = True
) -> InboundAuth:
    """Routing and secrets from every brand's policy (``brands``: name -> Brand or LoadedPolicy).

    With ``read_secrets=False`` only the routing and the *names* of the variables are kept.
    """
    environ = os.environ if environ is None else environ
    warned: set[str] = set()

    def secret(name: str | None, what: str) -> bytes | None:
        if not name or not read_secrets:
            return None
        value = environ.get(name)
        if not value:
            if name not in warned:
                warned.add(name)
                log.warning("%s is read from %s, which is not set: requests needing it are refused", what, name)
            return None
        return value.encode()

    accounts: dict[str, dict[str, list[str]]] = {}
    meta, api = MetaSecrets(), ApiKeys()
    for brand_name, brand in brands.items():
        policy = brand.policy
        for platform in META_PLATFORMS:
            channel = policy.channels.get(platform)
            if channel is None:
                continue
            accounts.setdefault(brand_name, {})[platform] = list(channel.account_ids)
            if channel.app_secret_env:
                meta.secret_env[(brand_name, platform)] = channel.app_secret_env
                value = secret(channel.app_secret_env, f"the Meta app secret of {brand_name} {platform}")
                if value:
                    meta.app_secrets[channel.app_secret_env] = value
            token = secret(channel.verify_token_env, f"the Meta verify token of {brand_name} {platform}")
            if token and token not in meta.verify_tokens:
                meta.verify_tokens.append(token)
        token = secret(policy.api.token_env, f"the API token of {brand_name}")
        if token:
            api.tokens[brand_name] = token
        signing = secret(policy.api.signing_secret_env, f"the API signing secret of {brand_name}")
        if signing:
            api.signing[brand_name] = signing
    return InboundAuth(routing=Routing.from_channels(accounts), meta=meta, api=api)
