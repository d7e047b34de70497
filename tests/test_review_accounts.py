"""Review-app accounts from the command line, password hashing, sessions, and Redis being gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import redis
from pydantic import SecretStr
from starlette.testclient import TestClient

from worker.accounts import Accounts, sign, unsign
from worker.settings import REPO_ROOT


def cli(redis_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        cwd=REPO_ROOT,
        input=stdin,
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_users_add_reads_the_password_from_stdin_and_stores_only_an_argon2_hash(client, redis_url) -> None:
    added = cli(
        redis_url, "users", "add", "mia", "--brand", "demo-shop", "--role", "moderator", stdin="s3cret-passphrase\n"
    )
    assert added.returncode == 0, added.stderr
    assert "added mia (moderator; brands demo-shop)" in added.stdout and "s3cret" not in added.stdout + added.stderr
    raw = client.get("rg:user:mia")
    assert raw and b"s3cret" not in raw
    assert json.loads(raw)["password_hash"].startswith("$argon2id$")
    accounts = Accounts(client)
    assert accounts.authenticate("mia", "s3cret-passphrase").name == "mia"
    assert accounts.authenticate("mia", "s3cret-passphrase ") is None
    assert accounts.authenticate("nobody", "s3cret-passphrase") is None

    again = cli(redis_url, "users", "add", "mia", "--brand", "demo-shop", "--role", "tier1", stdin="another-one\n")
    assert again.returncode == 1 and "already exists" in again.stderr
    short = cli(redis_url, "users", "add", "kai", "--brand", "demo-shop", "--role", "tier1", stdin="short\n")
    assert short.returncode == 1 and "at least 8 characters" in short.stderr
    badrole = cli(redis_url, "users", "add", "kai", "--brand", "demo-shop", "--role", "boss", stdin="long enough\n")
    assert badrole.returncode == 2 and "invalid choice" in badrole.stderr
    badbrand = cli(redis_url, "users", "add", "kai", "--brand", "Demo Shop", "--role", "tier1", stdin="long enough\n")
    assert badbrand.returncode == 1 and "is not a brand name" in badbrand.stderr
    no_arg = cli(redis_url, "users", "add", "kai", "--brand", "demo-shop", "--role", "tier1", "--password", "x")
    assert no_arg.returncode == 2  # there is no way to pass a password as an argument

    listed = cli(redis_url, "users", "list", "--json")
    users = json.loads(listed.stdout)
    assert [u["name"] for u in users] == ["mia"] and "password_hash" not in users[0]
    assert cli(redis_url, "users", "disable", "mia").returncode == 0
    assert accounts.authenticate("mia", "s3cret-passphrase") is None
    assert "disabled" in cli(redis_url, "users", "list").stdout
    assert cli(redis_url, "users", "enable", "mia").returncode == 0
    assert accounts.authenticate("mia", "s3cret-passphrase") is not None
    assert cli(redis_url, "users", "disable", "ghost").returncode == 1


def test_cookie_signatures_are_checked() -> None:
    signed = sign(b"k" * 32, "token-value")
    assert unsign(b"k" * 32, signed) == "token-value"
    assert unsign(b"x" * 32, signed) is None
    tampered = signed[:-1] + ("1" if signed.endswith("0") else "0")
    assert unsign(b"k" * 32, tampered) is None
    assert unsign(b"k" * 32, "no-signature") is None


def test_redis_gone_answers_503_without_a_traceback(settings, brands, client) -> None:
    from worker.web import create_app

    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    with_secret = settings.model_copy(update={"session_secret": SecretStr("s" * 32)})
    with TestClient(create_app(with_secret, connection=dead, brands=brands), raise_server_exceptions=False) as http:
        assert http.get("/api/review/queue").status_code == 401  # no cookie: nothing to look up
        http.cookies.set("rg_session", sign(b"s" * 32, "token"))
        for path in ("/api/review/queue", "/review"):
            answer = http.get(path)
            assert answer.status_code == 503 and "Traceback" not in answer.text, path
            assert answer.json() == {"error": "storage unavailable, try again later"}
