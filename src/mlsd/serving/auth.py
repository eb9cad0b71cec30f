"""Who may write: one bearer token per home for the routes that change state, as Jupyter does.

``mlsd serve`` generates the token into ``HOME/token`` (mode 0600) on first start and prints it
once; clients send ``Authorization: Bearer TOKEN``. Labels, events and any admin route need it;
scoring stays open unless the service is told otherwise (``--token-all``). A service without a
token binds to a loopback address only. Every POST route takes ``application/json`` only, so a
page on another site cannot send a "simple" cross-site request (``text/plain`` forms) to it.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from pathlib import Path

from starlette.requests import Request

TOKEN_FILE = "token"
TOKEN_ENV = "MLSD_TOKEN"


def token_path(home: Path) -> Path:
    return Path(home) / TOKEN_FILE


def load_or_create_token(home: Path) -> tuple[str, bool]:
    """``(token, created)``: ``$MLSD_TOKEN``, else the home's token file, else a new one written there."""
    existing = read_token(home)
    if existing is not None:
        return existing, False
    path = token_path(home)
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token, True


def read_token(home: Path) -> str | None:
    """The token a client of the service at ``home`` sends: ``$MLSD_TOKEN`` or the home's file, if any."""
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV]
    path = token_path(home)
    return path.read_text(encoding="utf-8").strip() if path.exists() else None


def authorized(request: Request, token: str | None) -> bool:
    """Whether the request carries ``token`` as its bearer credential (always, when there is no token)."""
    if token is None:
        return True
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(credential.strip().encode(), token.encode())


def is_json(request: Request) -> bool:
    """Whether the body is declared ``application/json`` (or a ``+json`` type)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
