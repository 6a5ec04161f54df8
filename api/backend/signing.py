"""The secret that signs access tokens: from config, or generated once for the embedded database.

Every worker and every restart must sign with the same secret, so the generated one is
kept in the data directory (mode 0600) rather than in memory.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from .config import Settings


class ConfigError(RuntimeError):
    """The configuration cannot work; the message says what to set."""


SECRET_FILE = "jwt_secret"  # noqa: S105 - a file name, not a secret


def signing_secret(settings: Settings) -> str:
    """The token signing secret this process must use."""
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    if not settings.embedded:
        raise ConfigError(
            "JWT_SECRET is not set. With an external DATABASE_URL the service needs a secret "
            "of at least 32 bytes, e.g. JWT_SECRET=$(python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))')"
        )
    return _stored_secret(settings.data_dir / SECRET_FILE)


def _stored_secret(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Written aside, then linked into place: when two processes start at once,
        # exactly one link wins and neither ever reads a half-written file.
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{path} can be read by other users; restrict it with `chmod 600 {path}`")
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret.encode()) < 32:
        raise ConfigError(f"{path} holds no usable secret; delete it to make a new one")
    return secret
