"""docker-compose.yml and the Dockerfile agree with the application they run.

Docker is not needed: the files are parsed and checked against `Settings` (the
environment names it reads) and against each other (names, ports, credentials).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from pydantic import AliasChoices, AliasPath

from api.backend.config import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
JWT_48 = "compose-test-secret-" + "s" * 28
assert len(JWT_48) == 48

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}
_INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)


# --- helpers ---------------------------------------------------------------------------


def settings_env_names() -> set[str]:
    """Every environment name `Settings` reads, upper-cased, derived from its fields."""
    prefix = Settings.model_config.get("env_prefix", "")
    names: set[str] = set()
    for field_name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            for choice in alias.choices:
                if isinstance(choice, str):
                    names.add(choice.upper())
                elif isinstance(choice, AliasPath) and isinstance(choice.path[0], str):
                    names.add(choice.path[0].upper())
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def interpolate(text: str, variables: dict[str, str]) -> str:
    """Compose's variable substitution (the subset this file may use)."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        value = variables.get(name)
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise KeyError(f"{name}: {arg}")
        if op in (":-", "-") and (value is None or (op == ":-" and value == "")):
            return str(arg)
        return value or ""

    return _INTERPOLATION.sub(replace, text.replace("$$", "\0")).replace("\0", "$")


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's `environment`, in either of compose's two forms, as raw strings."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = [item.split("=", 1) for item in env]
        return {pair[0]: pair[1] if len(pair) > 1 else "" for pair in pairs}
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends in a line continuation"
    result = []
    for entry in logical:
        keyword, _, rest = entry.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def exec_form(arguments: str) -> list[str]:
    """CMD/ENTRYPOINT arguments as a list: the JSON exec form, or a shell form split."""
    if arguments.startswith("["):
        parsed = json.loads(arguments)
        assert isinstance(parsed, list)
        return [str(part) for part in parsed]
    return shlex.split(arguments)


def option(argv: list[str], name: str) -> str | None:
    """The value of `--name VALUE` or `--name=VALUE` in argv, or None."""
    for index, arg in enumerate(argv):
        if arg == name and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def container_port(mapping: Any) -> int:
    """The container side of a compose `ports` entry (short or long syntax)."""
    if isinstance(mapping, dict):
        return int(mapping["target"])
    text = str(mapping).split("/", 1)[0]  # drop /tcp
    return int(text.rsplit(":", 1)[-1])


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose.get("services")
    assert isinstance(found, dict), "docker-compose.yml has no services"
    assert {"db", "api"} <= found.keys(), f"services are {sorted(found)}"
    return found


@pytest.fixture(scope="module")
def api_env(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {
        k: interpolate(v, {"JWT_SECRET": JWT_48}) for k, v in environment(services["api"]).items()
    }


@pytest.fixture(scope="module")
def db_env(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    return environment(services["db"])


@pytest.fixture(scope="module")
def cmd() -> list[str]:
    commands = [args for keyword, args in dockerfile_instructions() if keyword == "CMD"]
    assert commands, "the Dockerfile has no CMD"
    return exec_form(commands[-1])  # the last CMD wins


# --- the helpers themselves ------------------------------------------------------------


def test_env_names_are_derived_from_settings() -> None:
    names = settings_env_names()
    # Aliased fields answer to their aliases; the others to API_<FIELD>.
    assert {"DATABASE_URL", "API_DATABASE_URL", "JWT_SECRET", "API_JWT_SECRET"} <= names
    assert {"API_LOAD_SAMPLE_DATA", "API_BCRYPT_ROUNDS", "API_DATA_DIR"} <= names
    assert "API_DATABASE_URL" in names
    assert "DATABASE_URL" in names
    assert "LOAD_SAMPLE_DATA" not in names
    assert len(names) >= len(Settings.model_fields)


def test_interpolation_follows_compose_rules() -> None:
    assert interpolate("${A:-x}", {}) == "x"
    assert interpolate("${A:-x}", {"A": "y"}) == "y"
    assert interpolate("$${A}", {"A": "y"}) == "${A}"
    with pytest.raises(KeyError, match="set it"):
        interpolate("${A:?set it}", {})
    with pytest.raises(KeyError):
        interpolate("${A:?set it}", {"A": ""})


# --- the api service -------------------------------------------------------------------


def test_api_environment_names_are_read_by_settings(services: dict[str, dict[str, Any]]) -> None:
    accepted = settings_env_names()
    names = set(environment(services["api"]))
    assert names, "the api service sets no environment"
    unknown = sorted(n for n in names if n.upper() not in accepted)
    assert not unknown, f"Settings ignores {unknown}; it reads {sorted(accepted)}"


def test_api_sets_database_jwt_and_sample_data(services: dict[str, dict[str, Any]]) -> None:
    raw = environment(services["api"])
    assert "DATABASE_URL" in raw
    assert "API_LOAD_SAMPLE_DATA" in raw
    assert raw["API_LOAD_SAMPLE_DATA"].lower() == "true"


def test_jwt_secret_is_required_from_the_outside(services: dict[str, dict[str, Any]]) -> None:
    raw = environment(services["api"])["JWT_SECRET"]
    assert raw.startswith("${JWT_SECRET:?"), f"JWT_SECRET must be ${{JWT_SECRET:?...}}, is {raw!r}"
    with pytest.raises(KeyError, match="JWT_SECRET"):
        interpolate(raw, {})  # `docker compose up` refuses to start without it
    assert interpolate(raw, {"JWT_SECRET": JWT_48}) == JWT_48


def test_database_url_points_at_the_db_service(
    services: dict[str, dict[str, Any]], api_env: dict[str, str], db_env: dict[str, str]
) -> None:
    url = urlsplit(api_env["DATABASE_URL"])
    assert url.scheme in ("postgresql", "postgres")
    assert url.hostname == "db"
    assert url.hostname in services
    assert url.port == 5432
    assert unquote(url.username or "") == db_env["POSTGRES_USER"]
    assert unquote(url.password or "") == db_env["POSTGRES_PASSWORD"]
    assert unquote(url.path.lstrip("/")) == db_env["POSTGRES_DB"]


def test_api_waits_for_a_healthy_db(services: dict[str, dict[str, Any]]) -> None:
    depends = services["api"].get("depends_on")
    assert isinstance(depends, dict), "depends_on must be the long form with a condition"
    assert depends.get("db", {}).get("condition") == "service_healthy"


def test_api_restarts_and_is_built_here(services: dict[str, dict[str, Any]]) -> None:
    api = services["api"]
    assert api.get("restart") == "unless-stopped"
    build = api.get("build")
    context = build.get("context", ".") if isinstance(build, dict) else build
    assert context == "."
    dockerfile = build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile"
    assert (ROOT / str(context) / dockerfile).resolve() == DOCKERFILE


def test_published_port_is_the_port_the_image_serves(
    services: dict[str, dict[str, Any]], cmd: list[str]
) -> None:
    ports = services["api"].get("ports")
    assert ports, "the api publishes no port"
    targets = {container_port(p) for p in ports}
    served = option(cmd, "--port")
    assert served is not None, f"CMD {cmd} does not say --port"
    exposed = {
        int(port.split("/", 1)[0])
        for keyword, args in dockerfile_instructions()
        if keyword == "EXPOSE"
        for port in args.split()
    }
    assert targets == {int(served)}
    assert exposed == {int(served)}


def test_settings_from_the_compose_environment(
    api_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Only what compose sets: nothing inherited from this machine, no .env file.
    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.chdir(tmp_path)
    for name, value in api_env.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)
    assert not settings.embedded
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == api_env["DATABASE_URL"]
    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == JWT_48
    assert settings.seed_on_start is True


def test_compose_rejects_a_short_secret_like_the_app(
    api_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The message in ${JWT_SECRET:?...} promises 32+ bytes: the app enforces exactly that."""
    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)
    env = dict(api_env, JWT_SECRET="x" * 31)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match="32"):
        Settings(_env_file=None)


# --- the db service --------------------------------------------------------------------


def test_db_is_postgres_16_with_credentials(
    db_env: dict[str, str], services: dict[str, Any]
) -> None:
    assert str(services["db"].get("image", "")).startswith("postgres:16")
    for name in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        assert db_env.get(name), f"db sets no {name}"


def test_db_keeps_its_data_in_a_named_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    volumes = services["db"].get("volumes") or []
    mounts: dict[str, str] = {}
    for volume in volumes:
        if isinstance(volume, dict):
            mounts[str(volume["target"])] = str(volume.get("source", ""))
        else:
            source, _, target = str(volume).partition(":")
            mounts[target.split(":", 1)[0]] = source
    mounted = mounts.get("/var/lib/postgresql/data")
    assert mounted, f"db mounts nothing on /var/lib/postgresql/data: {mounts}"
    assert mounted in (compose.get("volumes") or {}), f"{mounted!r} is not a named volume"


def test_db_healthcheck_asks_pg_isready_for_its_own_user_and_database(
    services: dict[str, dict[str, Any]], db_env: dict[str, str]
) -> None:
    check = services["db"].get("healthcheck")
    assert isinstance(check, dict), "db has no healthcheck"
    test = check.get("test")
    if isinstance(test, list):
        assert test[0] in ("CMD", "CMD-SHELL")
        argv = shlex.split(" ".join(test[1:])) if test[0] == "CMD-SHELL" else test[1:]
    else:
        argv = shlex.split(str(test))
    assert argv[0] == "pg_isready"
    assert option(argv, "-U") == db_env["POSTGRES_USER"]
    assert option(argv, "-d") == db_env["POSTGRES_DB"]


def test_db_port_is_not_published(services: dict[str, dict[str, Any]]) -> None:
    assert not services["db"].get("ports"), "PostgreSQL needs no port outside compose"


# --- the Dockerfile --------------------------------------------------------------------


def test_dockerfile_serves_on_all_interfaces(cmd: list[str]) -> None:
    assert cmd[:2] == ["api-admin", "serve"], f"CMD is {cmd}"
    assert option(cmd, "--host") == "0.0.0.0"  # noqa: S104


def test_dockerfile_is_slim_non_root_and_installs_the_wheel() -> None:
    instructions = dockerfile_instructions()
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert froms
    assert froms[0].split()[0] == "python:3.11-slim"
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users, "the Dockerfile never switches user"
    assert users[-1].split(":")[0] not in ("root", "0"), "the service must not run as root"
    runs = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert re.search(r"pip install --no-cache-dir \.(\s|$)", runs)
    assert "-e ." not in runs
    assert "--editable" not in runs


def test_dockerfile_healthcheck_hits_health_without_curl() -> None:
    checks = [args for keyword, args in dockerfile_instructions() if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    check = checks[0]
    assert "CMD" in check
    assert "/health" in check
    assert "urllib" in check
    assert "curl" not in check
    assert "wget" not in check


def _after_cmd(healthcheck: str) -> str:
    return healthcheck.split("CMD", 1)[1].strip()


def test_healthcheck_command_is_valid_python_on_the_served_port(cmd: list[str]) -> None:
    check = next(a for k, a in dockerfile_instructions() if k == "HEALTHCHECK")
    argv = exec_form(_after_cmd(check))
    assert argv[:2] == ["python", "-c"]
    compile(argv[2], "<healthcheck>", "exec")
    urls = re.findall(r"https?://[^'\"\s]+", argv[2])
    assert [urlsplit(u).port for u in urls] == [int(option(cmd, "--port") or 0)]
    assert [urlsplit(u).path for u in urls] == ["/health"]


def test_dockerignore_keeps_the_build_context_small() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".git", "tests", ".env"} <= ignored
    assert any("__pycache__" in entry for entry in ignored)
    # What the image build copies must not be ignored.
    copied = {"pyproject.toml", "README.md", "schema.sql", "api", "queries"}
    assert not copied & ignored
