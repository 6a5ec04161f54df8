"""What signs and verifies access tokens, built once at start: `token_keys(settings)`.

HS* sign with a secret: JWT_SECRET, or on the embedded database one generated once and
kept in the data directory (mode 0600), so every worker and restart signs alike. RS*,
ES* and EdDSA sign with the PEM private key in API_JWT_PRIVATE_KEY_FILE, which every
worker reads; anyone holding the public key (GET /.well-known/jwks.json) can verify.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from .config import Settings


class ConfigError(RuntimeError):
    """The configuration cannot work; the message says what to set."""


SECRET_FILE = "jwt_secret"  # noqa: S105 - a file name, not a secret
MIN_RSA_BITS = 2048
# RFC 7518 section 3.2: an HMAC key at least as long as the hash's output.
MIN_HMAC_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
_CURVES: dict[str, type[ec.EllipticCurve]] = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1}
_JWA_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_NEEDS = {
    "RS": f"an RSA key of {MIN_RSA_BITS} bits or more",
    "ES256": "an EC key on the curve P-256",
    "ES384": "an EC key on the curve P-384",
    "EdDSA": "an Ed25519 key",
}
_KEY_FILE = "API_JWT_PRIVATE_KEY_FILE"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True, slots=True)
class TokenKeys:
    """How this service signs and checks tokens: one algorithm, its keys, iss and aud."""

    algorithm: str
    signing_key: str | PrivateKey = field(repr=False)
    verifying_key: str | PublicKey = field(repr=False)
    # Put into every token and required of every token presented, when set.
    issuer: str | None
    audience: str | None
    # Bytes no client ever sees, for keys derived from them (cursor MACs): the HMAC
    # secret, or the private key's DER. The same in every worker.
    secret: bytes = field(repr=False)
    # Key pairs only: the RFC 7638 thumbprint, the public JWK (RFC 7517) and PEM.
    kid: str | None = None
    public_jwk: dict[str, str] | None = None
    public_pem: str | None = None


def token_keys(settings: Settings) -> TokenKeys:
    """The keys this process signs and verifies with; `ConfigError` when they cannot work."""
    algorithm = settings.jwt_algorithm
    issuer, audience = settings.jwt_issuer or None, settings.jwt_audience or None
    if algorithm.startswith("HS"):
        if settings.jwt_private_key_file is not None:
            raise ConfigError(
                f"{_KEY_FILE} is set, but API_JWT_ALGORITHM={algorithm} signs with a secret; "
                "set API_JWT_ALGORITHM to RS256, ES256 or EdDSA, or unset the key file"
            )
        secret = signing_secret(settings)
        if len(secret.encode()) < MIN_HMAC_BYTES[algorithm]:
            raise ConfigError(
                f"{algorithm} needs a secret of at least {MIN_HMAC_BYTES[algorithm]} bytes "
                f"(RFC 7518 section 3.2); JWT_SECRET has {len(secret.encode())}"
            )
        return TokenKeys(algorithm, secret, secret, issuer, audience, secret=secret.encode())
    if settings.jwt_private_key_file is None:
        raise ConfigError(
            f"API_JWT_ALGORITHM={algorithm} needs {_KEY_FILE}: a PEM file holding "
            f"{_needs(algorithm)}, readable by this user only (chmod 600)"
        )
    private = _private_key(settings.jwt_private_key_file.expanduser(), algorithm)
    public = private.public_key()
    members = _jwk_members(public)
    kid = _thumbprint(members)
    der = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return TokenKeys(
        algorithm,
        private,
        public,
        issuer,
        audience,
        secret=der,
        kid=kid,
        public_jwk={**members, "kid": kid, "alg": algorithm, "use": "sig"},
        public_pem=pem.decode(),
    )


def public_key_pem(settings: Settings) -> str:
    """The PEM public key that verifies this service's tokens (key pairs only)."""
    if settings.jwt_algorithm.startswith("HS"):
        raise ConfigError(
            f"API_JWT_ALGORITHM={settings.jwt_algorithm} signs with a shared secret: there is "
            f"no public key; use RS256, ES256 or EdDSA with {_KEY_FILE} for one"
        )
    pem = token_keys(settings).public_pem
    if pem is None:  # pragma: no cover - every key pair has one
        raise RuntimeError("a key pair without a public key")
    return pem


def signing_secret(settings: Settings) -> str:
    """The HMAC secret this process must use (HS* algorithms)."""
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
    _refuse_if_shared(path, path.stat().st_mode)
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret.encode()) < 32:
        raise ConfigError(f"{path} holds no usable secret; delete it to make a new one")
    return secret


def _refuse_if_shared(path: Path, mode: int) -> None:
    if mode & 0o077:
        raise ConfigError(f"{path} can be read by other users; restrict it with `chmod 600 {path}`")


def _private_key(path: Path, algorithm: str) -> PrivateKey:
    """The private key in `path`, checked to be of the kind and size `algorithm` needs."""
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{_KEY_FILE}: {path} is not a file")
        _refuse_if_shared(path, mode)
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{_KEY_FILE}: cannot read {path}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:  # cryptography asks for the passphrase of an encrypted key
        raise ConfigError(
            f"{path} is encrypted and the service cannot ask for its passphrase; store it "
            f"unencrypted (`openssl pkey -in {path} -out NEW.pem`), readable by this user only"
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        held = "a public key" if b"PUBLIC KEY-----" in data else "no PEM private key"
        raise ConfigError(f"{path} holds {held}; {_KEY_FILE} must name a PEM private key") from exc
    fitting = _fitting(key, algorithm)
    if fitting is None:
        raise ConfigError(f"{path} holds {_describe(key)}; {algorithm} needs {_needs(algorithm)}")
    return fitting


def _fitting(key: PrivateKeyTypes, algorithm: str) -> PrivateKey | None:
    if algorithm.startswith("RS"):
        if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= MIN_RSA_BITS:
            return key
        return None
    if algorithm in _CURVES:
        curve = _CURVES[algorithm]
        if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, curve):
            return key
        return None
    return key if isinstance(key, ed25519.Ed25519PrivateKey) else None


def _needs(algorithm: str) -> str:
    return _NEEDS["RS" if algorithm.startswith("RS") else algorithm]


def _describe(key: PrivateKeyTypes) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return f"an RSA key of {key.key_size} bits"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"an EC key on the curve {_JWA_CURVES.get(key.curve.name, key.curve.name)}"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "an Ed25519 key"
    return f"a key of another kind ({type(key).__name__})"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _uint(number: int, size: int = 0) -> bytes:
    """Big-endian, in `size` bytes or the fewest that hold it (RFC 7518 section 2)."""
    return number.to_bytes(size or max(1, (number.bit_length() + 7) // 8), "big")


def _jwk_members(key: PublicKey) -> dict[str, str]:
    """The public key as the JWK members its thumbprint covers (RFC 7518 section 6)."""
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return {"kty": "RSA", "n": _b64url(_uint(numbers.n)), "e": _b64url(_uint(numbers.e))}
    if isinstance(key, ec.EllipticCurvePublicKey):
        point = key.public_numbers()
        size = (key.curve.key_size + 7) // 8  # coordinates keep their full length
        return {
            "kty": "EC",
            "crv": _JWA_CURVES[key.curve.name],
            "x": _b64url(_uint(point.x, size)),
            "y": _b64url(_uint(point.y, size)),
        }
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw)}


def _thumbprint(members: dict[str, str]) -> str:
    """RFC 7638: SHA-256 over the required members, sorted, without whitespace."""
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode()).digest())
