"""The deployment files (deploy/) name only commands Mailhaven has, and parse."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mailhaven.cli import app

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MAILHAVEN = re.compile(r"\bmailhaven\s+(.+?)(?:['\"]|$)")


def _commands(line: str) -> list[str]:
    """`mailhaven` and its (sub)commands in a line, without options and arguments."""
    found = MAILHAVEN.search(line)
    if found is None:
        return []
    words = [w for w in shlex.split(found.group(1).strip("'\"")) if not w.startswith("-")]
    return words[:2]


def _exists(words: list[str]) -> bool:
    """Whether `mailhaven WORDS --help` succeeds: the command (and subcommand) is real."""
    result = CliRunner().invoke(app, [*words, "--help"])
    return result.exit_code == 0


def _unit_commands() -> list[tuple[str, list[str]]]:
    found = []
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        for line in unit.read_text().splitlines():
            if line.startswith("ExecStart="):
                found.append((unit.name, _commands(line)))
    return found


def test_every_units_exec_start_is_a_mailhaven_command() -> None:
    commands = _unit_commands()
    assert {name for name, _ in commands} >= {"mailhaven-api.service",
                                              "mailhaven-worker@.service"}
    for name, words in commands:
        assert words and _exists(words), f"{name}: mailhaven {' '.join(words)}"
    assert (DEPLOY / "systemd" / "mailhaven-backup.timer").exists()


def test_the_compose_file_parses_and_its_commands_exist() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "api", "worker", "migrate", "proxy"} <= set(services)
    mailhaven = {name: s for name, s in services.items()
                 if "mailhaven" in str(s.get("image", ""))}
    assert set(mailhaven) >= {"api", "worker", "migrate"}
    for name, service in mailhaven.items():
        assert _exists(list(service["command"])), name
        assert "postgres" in service["environment"]["MAILHAVEN_DATABASE_URL"]


@pytest.mark.parametrize("instruction", ["ENTRYPOINT", "CMD"])
def test_the_containerfile_runs_a_mailhaven_command(instruction: str) -> None:
    lines = [line for line in (DEPLOY / "Containerfile").read_text().splitlines()
             if line.startswith(f"{instruction} ")]
    assert len(lines) == 1
    words = yaml.safe_load(lines[0].removeprefix(f"{instruction} "))  # a JSON array
    if instruction == "ENTRYPOINT":
        assert words == ["mailhaven"]
    else:
        assert _exists(words)


# What the container files promise (docs/deployment.md, "Containers"): only the proxy is
# trusted, /keys is writable on first start, the MX and submission are published, and no
# password is written down.

REFERENCE = re.compile(r"\$\{(\w+)(:?[?-])?([^}]*)\}")


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _instructions() -> list[tuple[str, str]]:
    """The Containerfile's instructions (continuation lines joined), in order."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Containerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0], line.split(None, 1)[1]) for line in lines
            if line and not line.startswith("#")]


def _image_env() -> dict[str, str]:
    return {name: value for instruction, args in _instructions() if instruction == "ENV"
            for name, value in (pair.split("=", 1) for pair in args.split())}


def _mailhaven_services() -> dict[str, dict]:
    return {name: s for name, s in _compose()["services"].items()
            if "mailhaven" in str(s.get("image", ""))}


def test_the_proxy_alone_is_trusted_at_a_fixed_address_in_a_fixed_subnet() -> None:
    import ipaddress

    compose = _compose()
    networks = compose["networks"]
    assert len(networks) == 1, "one network, whose subnet the allow-list is written for"
    (network_name, network), = networks.items()
    (pool,) = network["ipam"]["config"]
    subnet = ipaddress.ip_network(pool["subnet"])
    dynamic = ipaddress.ip_network(pool["ip_range"])
    assert dynamic.subnet_of(subnet)  # type: ignore[arg-type]
    for name, service in compose["services"].items():
        assert network_name in service["networks"], f"{name} is on the fixed network"
    proxy = ipaddress.ip_address(
        compose["services"]["proxy"]["networks"][network_name]["ipv4_address"])
    assert proxy in subnet and proxy not in dynamic, "no replica can take the proxy's address"
    for name, service in _mailhaven_services().items():
        allowed = [ipaddress.ip_network(part.strip()) for part in
                   str(service["environment"]["MAILHAVEN_FORWARDED_ALLOW_IPS"]).split(",")]
        assert allowed == [ipaddress.ip_network(proxy)], f"{name} trusts the proxy only"


def test_no_password_is_written_in_the_container_files_and_compose_requires_one() -> None:
    compose_text = (DEPLOY / "compose.yaml").read_text()
    for path in (DEPLOY / "compose.yaml", DEPLOY / "Containerfile", DEPLOY / "Caddyfile"):
        assert "change-me" not in path.read_text().lower(), path.name
    services = _compose()["services"]
    password = services["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert REFERENCE.fullmatch(password).group(1, 2) == ("POSTGRES_PASSWORD", ":?")
    for name, service in _mailhaven_services().items():
        url = service["environment"]["MAILHAVEN_DATABASE_URL"]
        secret = url.split("://", 1)[1].rsplit("@", 1)[0].split(":", 1)[1]
        assert REFERENCE.fullmatch(secret).group(1, 2) == ("POSTGRES_PASSWORD", ":?"), name
    # every setting compose takes from deploy/.env is required, and the example names each
    # one empty: a copy that was not filled in is refused as well
    taken = {m.group(1): m.group(2) for m in REFERENCE.finditer(compose_text)}
    assert taken and set(taken.values()) == {":?"}
    example = dict(line.split("=", 1) for line in
                   (DEPLOY / "mailhaven.env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert set(example) == set(taken) and set(example.values()) == {""}


def test_the_image_makes_keys_and_the_data_dir_its_users_own() -> None:
    instructions = _instructions()
    (user,) = [args for instruction, args in instructions if instruction == "USER"]
    before_user = " ".join(args for instruction, args in
                           instructions[:instructions.index(("USER", user))]
                           if instruction == "RUN")
    data_dir = _image_env()["MAILHAVEN_DATA_DIR"]
    key_file = next(iter(_mailhaven_services().values()))["environment"][
        "MAILHAVEN_MASTER_KEY_FILE"]
    keys = str(Path(key_file).parent)
    assert re.search(rf"mkdir (-p )?{keys}\b", before_user)
    chown = re.search(r"chown (\S+) ([^&;]+)", before_user)
    assert chown is not None and chown.group(1).split(":")[0] == user
    assert {keys, data_dir} <= set(chown.group(2).split())
    for name, service in _mailhaven_services().items():
        assert f"keys:{keys}" in service["volumes"], name


def test_the_mx_and_submission_are_published_to_the_images_ports() -> None:
    env = _image_env()
    inside = {"25": env["MAILHAVEN_MX_PORT"], "587": env["MAILHAVEN_SMTP_PORT"],
              "465": env["MAILHAVEN_SMTPS_PORT"]}
    published = {}
    for name, service in _mailhaven_services().items():
        for mapping in service.get("ports", []):
            outside, port = str(mapping).rsplit(":", 1)
            published[outside] = (port, list(service["command"]), name)
    for outside, port in inside.items():
        assert outside in published, f"port {outside} is published"
        assert published[outside][0] == port, f"{outside} reaches the image's {port}"
    assert published["25"][1] == ["serve"], "the MX runs in `serve`"
    assert "MX 25" in (DEPLOY.parent / "docs" / "deployment.md").read_text()


def _unit(path: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_every_service_unit_runs_sandboxed_as_mailhaven() -> None:
    env = dict(line.split("=", 1) for line in
               (DEPLOY / "systemd" / "mailhaven.env.example").read_text().splitlines()
               if line and not line.startswith("#"))
    data_dir = env["MAILHAVEN_DATA_DIR"]
    assert Path(env["MAILHAVEN_MASTER_KEY_FILE"]).parent == Path(data_dir)
    for path in sorted((DEPLOY / "systemd").glob("*.service")):
        unit = _unit(path)
        assert unit["User"] == ["mailhaven"], path.name
        for key, value in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                           ("PrivateTmp", "yes"), ("ProtectHome", "yes"),
                           ("UMask", "0077")]:
            assert unit.get(key) == [value], f"{path.name}: {key}={value}"
        writable = " ".join(unit.get("ReadWritePaths", [])).split()
        assert data_dir in writable, f"{path.name} may write {data_dir}"
        capabilities = unit.get("CapabilityBoundingSet", [""])[0].split()
        assert set(capabilities) <= {"CAP_NET_BIND_SERVICE"}, path.name
