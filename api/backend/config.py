"""Settings read from the environment (and a `.env` file), through one cached getter.

Nothing is read at import time: `get_settings()` builds the object on first use and
tests replace it with `get_settings.cache_clear()` plus their own environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET_BYTES = 32


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("myapi", appauthor=False))


class Settings(BaseSettings):
    """Every knob of the service. Environment names are `API_<FIELD>` unless noted."""

    model_config = SettingsConfigDict(
        env_prefix="API_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # The PostgreSQL server to use. Unset: the embedded server in `data_dir`.
    database_url: Annotated[
        SecretStr | None,
        Field(validation_alias=AliasChoices("DATABASE_URL", "API_DATABASE_URL")),
    ] = None
    # Where the embedded PostgreSQL and the generated signing key live.
    data_dir: Path = Field(default_factory=_default_data_dir)
    # Load the bundled IMDb movies into an empty movies table on start.
    # Unset: only on the embedded database.
    load_sample_data: bool | None = None
    # Apply schema.sql whenever a worker starts (set by `serve --reload`).
    apply_schema_on_start: bool = False

    pool_min_size: Annotated[int, Field(ge=0, le=100)] = 2
    pool_max_size: Annotated[int, Field(ge=1, le=500)] = 10
    # Seconds to wait for a free connection before answering 503.
    pool_acquire_timeout: Annotated[float, Field(gt=0)] = 5.0
    # asyncpg's prepared-statement cache; 0 turns it off (PgBouncer in transaction mode).
    statement_cache_size: Annotated[int, Field(ge=0)] = 100
    command_timeout: Annotated[float, Field(gt=0)] = 30.0
    # Keep token states current through LISTEN/NOTIFY. Turn off behind PgBouncer in
    # transaction mode, which does not deliver notifications: tokens are then checked
    # with one query per request.
    token_notifications: bool = True
    # Where that one listening connection goes, when not to DATABASE_URL: the server
    # itself, past a PgBouncer in transaction mode, so notifications stay on there.
    listen_database_url: SecretStr | None = None

    jwt_secret: Annotated[
        SecretStr | None,
        Field(validation_alias=AliasChoices("JWT_SECRET", "API_JWT_SECRET")),
    ] = None
    # HS* sign with JWT_SECRET; RS*, ES* and EdDSA sign with the private key in
    # jwt_private_key_file, and anyone holding the public key can verify.
    jwt_algorithm: Literal[
        "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA"
    ] = "HS256"
    # A PEM private key (RSA for RS*, EC for ES*, Ed25519 for EdDSA).
    jwt_private_key_file: Path | None = None
    # Put into every token and then required on every token presented, when set.
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    access_token_expire_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 30
    # bcrypt work factor for new hashes; 12 costs about 0.28 s per hash on a 2-core machine.
    bcrypt_rounds: Annotated[int, Field(ge=4, le=16)] = 12
    # How many bcrypt hashes a worker computes at once; more only queue inside bcrypt.
    # Unset: the number of CPU cores.
    bcrypt_concurrency: Annotated[int | None, Field(ge=1, le=256)] = None

    # Login throttling: within each window, the attempts allowed for one account and
    # from one client address before POST /token answers 429. 0 turns a limit off.
    login_window_seconds: Annotated[int, Field(ge=1, le=7 * 24 * 3600)] = 900
    login_account_limit: Annotated[int, Field(ge=0)] = 10
    login_address_limit: Annotated[int, Field(ge=0)] = 100

    cors_origins: list[str] = []
    # Addresses of the reverse proxies whose X-Forwarded-For to believe (comma-separated,
    # or * for any): the client address that login throttling counts. Unset: the peer's.
    forwarded_allow_ips: str | None = None

    @field_validator("jwt_secret")
    @classmethod
    def _secret_is_strong(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        return value

    @field_validator("database_url", "listen_database_url")
    @classmethod
    def _url_is_postgres(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None:
            return None
        name = "DATABASE_URL" if info.field_name == "database_url" else "API_LISTEN_DATABASE_URL"
        # Messages name the problem, never the URL: it may hold a password.
        try:
            parts = urlsplit(value.get_secret_value())
            parts.port  # noqa: B018 - parsing the port validates it
        except ValueError:
            raise ValueError(f"{name} is not a valid URL") from None
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError(f"{name} must start with postgresql:// or postgres://")
        return value

    @property
    def embedded(self) -> bool:
        """True when no external server is configured and the embedded one is used."""
        return self.database_url is None

    @property
    def seed_on_start(self) -> bool:
        return self.embedded if self.load_sample_data is None else self.load_sample_data


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, built on first use."""
    return Settings()
