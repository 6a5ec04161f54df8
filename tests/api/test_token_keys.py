"""Tokens signed with key pairs (RS256, ES256, EdDSA), the JWKS endpoint, and iss/aud.

Keys are generated here with cryptography and written to the test's directory, mode
0600 like a real deployment's; every app test goes through the real lifespan, login
and bearer check, over a fresh database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from pydantic import SecretStr

from api.backend.config import Settings
from api.backend.signing import ConfigError, _jwk_members, _thumbprint, token_keys
from queries.users import UserRow
from tests.api._support import assert_problem
from tests.conftest import TEST_PASSWORD, TEST_SECRET, app_client

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}


# Keys are made once per run and per arguments: the same arguments, the same key.


@cache
def _rsa(bits: int, other: int = 0) -> rsa.RSAPrivateKey:
    """An RSA key of `bits`; another `other` makes another key of that size."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@cache
def _ec(curve: str) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key({"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}[curve])


@cache
def _ed25519() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


KEYS: dict[str, Callable[[], PrivateKeyTypes]] = {
    "RS256": lambda: _rsa(2048),
    "ES256": lambda: _ec("P-256"),
    "EdDSA": _ed25519,
}


def _pem(
    key: PrivateKeyTypes,
    *,
    form: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8,
    password: bytes | None = None,
) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, form, encryption)


def _key_file(path: Path, data: bytes, mode: int = 0o600) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(mode)
    return path


def _keyed(settings: Settings, algorithm: str, key_file: Path | None, **more: Any) -> Settings:
    # JWT_SECRET stays set, as in a deployment moving to key pairs: it is then unused.
    update = {"jwt_algorithm": algorithm, "jwt_private_key_file": key_file, **more}
    return settings.model_copy(update=update)


def _public_pem(key: PrivateKeyTypes) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


async def _login(http: httpx.AsyncClient, user: UserRow) -> str:
    response = await http.post("/token", data={"username": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def _me(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.get("/users/me", headers={"Authorization": f"Bearer {token}"})


def _claims(user_id: int, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + 600,
        "jti": "k" * 32,
        "scope": "movies:read",
        "ver": 0,
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _json_part(part: dict[str, Any]) -> str:
    return _b64(json.dumps(part, separators=(",", ":")).encode())


def _unsigned_parts(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_json_part(header)}.{_json_part(claims)}"


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("algorithm", list(KEYS))
async def test_key_pair_round_trip_through_the_app(
    settings: Settings, user: UserRow, tmp_path: Path, algorithm: str
) -> None:
    key = KEYS[algorithm]()
    # ES256 from a traditional `BEGIN EC PRIVATE KEY` file; the others PKCS#8.
    form = (
        serialization.PrivateFormat.TraditionalOpenSSL
        if algorithm == "ES256"
        else serialization.PrivateFormat.PKCS8
    )
    keyed = _keyed(settings, algorithm, _key_file(tmp_path / "jwt.pem", _pem(key, form=form)))
    async with app_client(keyed) as http:
        token = await _login(http, user)
        me = await _me(http, token)
        assert me.status_code == 200, me.text
        assert me.json()["user_id"] == user.user_id
        jwks = await http.get("/.well-known/jwks.json")
    header = jwt.get_unverified_header(token)
    assert header["alg"] == algorithm
    assert jwks.status_code == 200, jwks.text
    assert jwks.headers["content-type"] == "application/json"
    assert "public" in jwks.headers["cache-control"]
    (jwk,) = jwks.json()["keys"]
    assert jwk["alg"] == algorithm
    assert jwk["use"] == "sig"
    assert jwk["kid"] == header["kid"]
    assert not PRIVATE_MEMBERS & jwk.keys()
    assert "key_ops" not in jwk  # RFC 7517 section 4.3: not with `use`
    # Anyone holding only the published key can verify the token.
    published = jwt.PyJWK(jwk)
    claims = jwt.decode(token, published, algorithms=[algorithm])
    assert claims["sub"] == str(user.user_id)
    assert "iss" not in claims
    assert "aud" not in claims
    # ...and the published key is the key pair's public half.
    assert published.key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == _public_pem(key)


def test_kid_is_the_rfc_7638_thumbprint(settings: Settings, tmp_path: Path) -> None:
    keyed = _keyed(settings, "EdDSA", _key_file(tmp_path / "jwt.pem", _pem(_ed25519())))
    keys = token_keys(keyed)
    assert keys.public_jwk is not None
    members = {name: keys.public_jwk[name] for name in ("crv", "kty", "x")}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    assert keys.kid == _b64(hashlib.sha256(canonical).digest())


@pytest.mark.parametrize(
    ("public_key", "thumbprint"),
    [
        # RFC 7638 section 3.1.
        (
            rsa.RSAPublicNumbers(
                65537,
                int.from_bytes(
                    base64.urlsafe_b64decode(
                        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aP"
                        "FFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl9"
                        "3lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdA"
                        "ZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3"
                        "XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw=="
                    ),
                    "big",
                ),
            ).public_key(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
        ),
        # RFC 8037 appendix A.3.
        (
            ed25519.Ed25519PublicKey.from_public_bytes(
                base64.urlsafe_b64decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
            ),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
        ),
    ],
    ids=["rfc7638-rsa", "rfc8037-ed25519"],
)
def test_thumbprint_matches_the_rfc_examples(
    public_key: rsa.RSAPublicKey | ed25519.Ed25519PublicKey, thumbprint: str
) -> None:
    assert _thumbprint(_jwk_members(public_key)) == thumbprint


async def test_hs256_has_no_public_key_and_no_kid(client: httpx.AsyncClient, user: UserRow) -> None:
    response = await client.get("/.well-known/jwks.json")
    body = assert_problem(response, 404, "public_key_not_found")
    assert "HS256" in body["detail"]
    assert "kid" not in jwt.get_unverified_header(await _login(client, user))


def test_token_keys_never_show_their_secrets(settings: Settings, tmp_path: Path) -> None:
    keyed = _keyed(settings, "EdDSA", _key_file(tmp_path / "jwt.pem", _pem(_ed25519())))
    hmac_keys, pair = token_keys(settings), token_keys(keyed)
    assert TEST_SECRET not in repr(hmac_keys)
    for shown in (repr(hmac_keys), repr(pair)):
        assert "secret=" not in shown
        assert "signing_key=" not in shown
    assert "PrivateKey" not in repr(pair)
    assert "kid=" in repr(pair)  # what is public stays visible


async def test_workers_with_the_same_key_file_agree_on_tokens_and_cursors(
    settings: Settings, user: UserRow, tmp_path: Path
) -> None:
    same = _keyed(settings, "RS256", _key_file(tmp_path / "jwt.pem", _pem(_rsa(2048))))
    other = _keyed(settings, "RS256", _key_file(tmp_path / "other.pem", _pem(_rsa(2048, other=1))))
    async with app_client(same) as first, app_client(same) as second, app_client(other) as third:
        token = await _login(first, user)
        bearer = {"Authorization": f"Bearer {token}"}
        page = await first.get("/movies", params={"limit": 2}, headers=bearer)
        cursor = page.json()["next_cursor"]
        assert (await _me(second, token)).status_code == 200
        following = {"limit": 2, "cursor": cursor}
        assert (await second.get("/movies", params=following, headers=bearer)).status_code == 200
        assert_problem(await _me(third, token), 401, "invalid_token")
        foreign = await third.get(
            "/movies",
            params=following,
            headers={"Authorization": f"Bearer {await _login(third, user)}"},
        )
        assert_problem(foreign, 400, "invalid_cursor")


# --------------------------------------------------------------------------- forgeries


@dataclass(frozen=True)
class Target:
    """What an attacker may know: the public key and kid; the real key, for the cases
    that use it with another algorithm."""

    key: rsa.RSAPrivateKey
    public_pem: bytes
    kid: str
    user_id: int


def _hs256_with_public_pem(target: Target) -> str:
    # The classic confusion: the public key used as an HMAC secret. PyJWT will not sign
    # that, so the HMAC is computed by hand.
    signed = _unsigned_parts({"alg": "HS256", "typ": "JWT"}, _claims(target.user_id))
    mac = hmac.new(target.public_pem, signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{_b64(mac)}"


def _alg_none(target: Target) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": target.kid}
    return _unsigned_parts(header, _claims(target.user_id)) + "."


def _another_key_same_kid(target: Target) -> str:
    headers = {"kid": target.kid}
    return jwt.encode(
        _claims(target.user_id), _rsa(2048, other=2), algorithm="RS256", headers=headers
    )


def _right_key_other_algorithm(algorithm: str) -> Callable[[Target], str]:
    def forge(target: Target) -> str:
        headers = {"kid": target.kid}
        return jwt.encode(_claims(target.user_id), target.key, algorithm=algorithm, headers=headers)

    return forge


def _hs256_with_the_secret(target: Target) -> str:
    # JWT_SECRET is still in the environment, but RS256 tokens are all that count.
    return jwt.encode(_claims(target.user_id), TEST_SECRET, algorithm="HS256")


FORGERIES: list[tuple[str, Callable[[Target], str]]] = [
    ("hs256-keyed-with-public-pem", _hs256_with_public_pem),
    ("alg-none", _alg_none),
    ("another-rsa-key-same-kid", _another_key_same_kid),
    ("rs512-same-key", _right_key_other_algorithm("RS512")),
    ("ps256-same-key", _right_key_other_algorithm("PS256")),
    ("hs256-with-the-unused-jwt-secret", _hs256_with_the_secret),
]


@pytest.mark.parametrize("forge", [f[1] for f in FORGERIES], ids=[f[0] for f in FORGERIES])
async def test_forged_token_is_refused_with_rs256(
    settings: Settings, user: UserRow, tmp_path: Path, forge: Callable[[Target], str]
) -> None:
    keyed = _keyed(settings, "RS256", _key_file(tmp_path / "jwt.pem", _pem(_rsa(2048))))
    keys = token_keys(keyed)
    assert keys.kid is not None
    target = Target(_rsa(2048), _public_pem(_rsa(2048)), keys.kid, user.user_id)
    async with app_client(keyed) as http:
        genuine = await _me(http, jwt.encode(_claims(user.user_id), _rsa(2048), algorithm="RS256"))
        assert genuine.status_code == 200, genuine.text  # the same claims, honestly signed
        response = await _me(http, forge(target))
    assert_problem(response, 401, "invalid_token")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


# --------------------------------------------------------------------------- refused keys


def _write(tmp_path: Path, data: bytes, mode: int = 0o600) -> Path:
    return _key_file(tmp_path / "jwt.pem", data, mode)


BAD_KEYS: list[tuple[str, str, Callable[[Path], Path | None], str]] = [
    # (id, algorithm, key file maker, message)
    (
        "ed25519-for-rs256",
        "RS256",
        lambda p: _write(p, _pem(_ed25519())),
        "holds an Ed25519 key; RS256 needs an RSA key of 2048 bits or more",
    ),
    (
        "rsa-1024-for-rs256",
        "RS256",
        lambda p: _write(p, _pem(_rsa(1024))),
        "holds an RSA key of 1024 bits; RS256 needs an RSA key of 2048 bits or more",
    ),
    (
        "p384-for-es256",
        "ES256",
        lambda p: _write(p, _pem(_ec("P-384"))),
        "holds an EC key on the curve P-384; ES256 needs an EC key on the curve P-256",
    ),
    (
        "rsa-for-es384",
        "ES384",
        lambda p: _write(p, _pem(_rsa(2048))),
        "holds an RSA key of 2048 bits; ES384 needs an EC key on the curve P-384",
    ),
    (
        "p256-for-eddsa",
        "EdDSA",
        lambda p: _write(p, _pem(_ec("P-256"))),
        "holds an EC key on the curve P-256; EdDSA needs an Ed25519 key",
    ),
    (
        "ed448-for-eddsa",
        "EdDSA",
        lambda p: _write(p, _pem(ed448.Ed448PrivateKey.generate())),
        "holds a key of another kind .*; EdDSA needs an Ed25519 key",
    ),
    (
        "encrypted",
        "RS256",
        lambda p: _write(p, _pem(_rsa(2048), password=b"passphrase")),
        "is encrypted and the service cannot ask for its passphrase",
    ),
    (
        "public-key",
        "RS256",
        lambda p: _write(p, _public_pem(_rsa(2048))),
        "holds a public key; API_JWT_PRIVATE_KEY_FILE must name a PEM private key",
    ),
    (
        "not-pem",
        "EdDSA",
        lambda p: _write(p, b"not a key\n"),
        "holds no PEM private key",
    ),
    ("missing", "RS256", lambda p: p / "nowhere.pem", "cannot read .*nowhere.pem"),
    ("a-directory", "RS256", lambda p: p, "is not a file"),
    ("no-key-file", "ES256", lambda p: None, "ES256 needs API_JWT_PRIVATE_KEY_FILE"),
    (
        "mode-0644",
        "RS256",
        lambda p: _write(p, _pem(_rsa(2048)), 0o644),
        "can be read by other users; restrict it with `chmod 600",
    ),
    ("mode-0640", "EdDSA", lambda p: _write(p, _pem(_ed25519()), 0o640), "chmod 600"),
    (
        "key-file-with-hs256",
        "HS256",
        lambda p: _write(p, _pem(_rsa(2048))),
        "API_JWT_PRIVATE_KEY_FILE is set, but API_JWT_ALGORITHM=HS256 signs with a secret",
    ),
]


@pytest.mark.parametrize(
    ("algorithm", "make", "message"),
    [case[1:] for case in BAD_KEYS],
    ids=[case[0] for case in BAD_KEYS],
)
def test_unusable_key_is_refused(
    settings: Settings,
    tmp_path: Path,
    algorithm: str,
    make: Callable[[Path], Path | None],
    message: str,
) -> None:
    with pytest.raises(ConfigError, match=message):
        token_keys(_keyed(settings, algorithm, make(tmp_path)))


async def _start(settings: Settings) -> None:
    async with app_client(settings):
        pass  # pragma: no cover - the lifespan refuses first


async def test_app_refuses_to_start_with_a_key_of_the_wrong_type(
    settings: Settings, tmp_path: Path
) -> None:
    keyed = _keyed(settings, "RS256", _write(tmp_path, _pem(_ec("P-256"))))
    with pytest.raises(ConfigError, match="holds an EC key on the curve P-256; RS256 needs"):
        await _start(keyed)


@pytest.mark.parametrize(("algorithm", "needed"), [("HS384", 48), ("HS512", 64)])
def test_hmac_secret_shorter_than_the_hash_is_refused(
    settings: Settings, algorithm: str, needed: int
) -> None:
    def configured(length: int) -> Settings:
        secret = SecretStr("s" * length)
        return settings.model_copy(update={"jwt_algorithm": algorithm, "jwt_secret": secret})

    assert token_keys(configured(needed)).algorithm == algorithm
    with pytest.raises(ConfigError, match=f"{algorithm} needs a secret of at least {needed} "):
        token_keys(configured(needed - 1))


# --------------------------------------------------------------------------- the CLI


def _admin(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    beside = Path(sys.executable).parent / "api-admin"
    script = str(beside) if beside.exists() else shutil.which("api-admin")
    assert script, "the api-admin script is not installed"
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith(("API_", "JWT_", "DATABASE_", "TEST_DATABASE", "PG"))
    }
    return subprocess.run(
        [script, *args],
        capture_output=True,
        text=True,
        env=inherited | {"HOME": str(home), "API_DATA_DIR": str(home / "data")} | env,
        cwd=home,  # no .env file
        timeout=120,
        check=False,
        start_new_session=True,
    )


def test_public_key_command_prints_the_pem(tmp_path: Path) -> None:
    key_file = _write(tmp_path, _pem(_ed25519()))
    done = _admin(
        tmp_path, "public-key", API_JWT_ALGORITHM="EdDSA", API_JWT_PRIVATE_KEY_FILE=str(key_file)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.encode() == _public_pem(_ed25519())
    assert "PRIVATE" not in done.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "error: API_JWT_ALGORITHM=HS256 signs with a shared secret: there is no public key"),
        (
            {"API_JWT_ALGORITHM": "RS256", "API_JWT_PRIVATE_KEY_FILE": "missing.pem"},
            "error: API_JWT_PRIVATE_KEY_FILE: cannot read missing.pem",
        ),
    ],
    ids=["hs256", "missing-key"],
)
def test_public_key_command_failure_is_one_line(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    done = _admin(tmp_path, "public-key", **env)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(message)


def test_serve_with_a_wrong_key_prints_one_line(tmp_path: Path, database: str) -> None:
    key_file = _write(tmp_path, _pem(_rsa(1024)))
    done = _admin(
        tmp_path,
        "serve",
        "--port",
        "1",  # never reached: the key is refused before uvicorn starts
        DATABASE_URL=database,
        API_JWT_ALGORITHM="RS256",
        API_JWT_PRIVATE_KEY_FILE=str(key_file),
    )
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [
        f"error: {key_file} holds an RSA key of 1024 bits; "
        "RS256 needs an RSA key of 2048 bits or more"
    ]


# --------------------------------------------------------------------------- iss and aud

ISSUER = "https://auth.example.test"
AUDIENCE = "movies-api"


async def test_issuer_and_audience_are_in_every_token(
    settings: Settings, user: UserRow, tmp_path: Path
) -> None:
    keyed = _keyed(
        settings,
        "ES256",
        _write(tmp_path, _pem(_ec("P-256"))),
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
    )
    async with app_client(keyed) as http:
        token = await _login(http, user)
        assert (await _me(http, token)).status_code == 200
        jwk = (await http.get("/.well-known/jwks.json")).json()["keys"][0]
    claims = jwt.decode(
        token, jwt.PyJWK(jwk), algorithms=["ES256"], audience=AUDIENCE, issuer=ISSUER
    )
    assert claims["iss"] == ISSUER
    assert claims["aud"] == AUDIENCE


IDENTITIES: list[tuple[str, dict[str, Any], int]] = [
    # (id, claims changed, status)
    ("both-right", {"iss": ISSUER, "aud": AUDIENCE}, 200),
    ("audience-in-a-list", {"iss": ISSUER, "aud": ["other", AUDIENCE]}, 200),
    ("no-issuer", {"aud": AUDIENCE}, 401),
    ("no-audience", {"iss": ISSUER}, 401),
    ("neither", {}, 401),
    ("other-issuer", {"iss": "https://evil.example.test", "aud": AUDIENCE}, 401),
    ("issuer-other-case", {"iss": ISSUER.upper(), "aud": AUDIENCE}, 401),
    ("other-audience", {"iss": ISSUER, "aud": "another-api"}, 401),
    ("audience-list-without-ours", {"iss": ISSUER, "aud": ["a", "b"]}, 401),
    ("issuer-as-audience", {"iss": AUDIENCE, "aud": ISSUER}, 401),
]


@pytest.mark.parametrize(
    ("changes", "status"), [c[1:] for c in IDENTITIES], ids=[c[0] for c in IDENTITIES]
)
async def test_issuer_and_audience_are_required_when_configured(
    settings: Settings, user: UserRow, changes: dict[str, Any], status: int
) -> None:
    configured = settings.model_copy(update={"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE})
    token = jwt.encode(_claims(user.user_id, **changes), TEST_SECRET, algorithm="HS256")
    async with app_client(configured) as http:
        response = await _me(http, token)
    if status == 200:
        assert response.status_code == 200, response.text
    else:
        assert_problem(response, 401, "invalid_token")


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({}, 200),
        ({"iss": ISSUER}, 200),  # no issuer configured: none is checked
        ({"aud": AUDIENCE}, 401),
        ({"aud": [AUDIENCE]}, 401),
        ({"iss": ISSUER, "aud": AUDIENCE}, 401),
    ],
    ids=["plain", "issuer", "audience", "audience-list", "both"],
)
async def test_a_token_with_an_audience_is_refused_when_none_is_configured(
    client: httpx.AsyncClient, user: UserRow, changes: dict[str, Any], status: int
) -> None:
    token = jwt.encode(_claims(user.user_id, **changes), TEST_SECRET, algorithm="HS256")
    response = await _me(client, token)
    if status == 200:
        assert response.status_code == 200, response.text
    else:
        body = assert_problem(response, 401, "invalid_token")
        assert body["detail"] == "The token is from another issuer or for another audience."
    own = jwt.decode(await _login(client, user), TEST_SECRET, algorithms=["HS256"])
    assert "iss" not in own
    assert "aud" not in own
