"""compose.yaml, checked without a container engine: valid against the Compose Specification's
JSON schema, and the topology issue 9 asks for (PostgreSQL 16, Redis with AOF, PgBouncer in
transaction pooling, 2 api, 2 worker, 1 scheduler, a one-shot migrate the others wait for)."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from tests.deploy.files import ROOT, compose, healthcheck_of, workpulse_services
from workpulse.settings import Settings

SCHEMA = Path(__file__).with_name("compose-spec") / "compose-spec.json"
SCHEMA_SHA256 = "56bab44c85c0ce8affb74474950293f37d510673283a243bcd7eeadb900fa35c"
PGBOUNCER_INI = ROOT / "deploy" / "pgbouncer" / "pgbouncer.ini"
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(:?[-?][^}]*)?\}")


def _errors(document: dict[str, Any]) -> list[str]:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
    return [f"{list(e.instance_path)}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_is_valid_against_the_compose_specification_schema() -> None:
    assert _errors(compose()) == []


@pytest.mark.parametrize(
    "spoil",
    [
        lambda d: d["services"]["api"].update(replica=2),
        lambda d: d["services"]["migrate"].update(restart=False),
        lambda d: d["services"]["worker"]["depends_on"]["migrate"].update(condition="done"),
    ],
    ids=["unknown-key", "wrong-type", "unknown-condition"],
)
def test_the_schema_check_refuses_a_spoiled_compose_file(spoil: Any) -> None:
    document = copy.deepcopy(compose())
    spoil(document)
    assert _errors(document) != []


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment is written as a mapping"
    return {k: str(v) for k, v in env.items()}


def test_the_engines_are_postgresql_16_redis_with_an_fsynced_append_only_file_and_pgbouncer() -> (
    None
):
    services = compose()["services"]
    assert re.fullmatch(r"postgres:16([.-].*)?", services["postgres"]["image"])
    redis = services["redis"]["command"]
    assert redis[0] == "redis-server"
    options = dict(zip(redis[1::2], redis[2::2], strict=True))
    assert options["--appendonly"] == "yes"
    assert options["--appendfsync"] == "always"
    assert options["--maxmemory-policy"] == "noeviction"
    assert services["redis"]["volumes"], "the append-only file is kept on a volume"
    assert services["pgbouncer"]["build"]["context"] == "deploy/pgbouncer"
    ini = dict(
        line.split("=", 1)
        for line in (raw.strip() for raw in PGBOUNCER_INI.read_text().splitlines())
        if "=" in line and not line.startswith(";")
    )
    ini = {k.strip(): v.strip() for k, v in ini.items()}
    assert ini["pool_mode"] == "transaction"
    assert ini["workpulse"] == "host=postgres port=5432 dbname=workpulse"


def test_two_apis_two_workers_one_scheduler_all_after_a_one_shot_migrate() -> None:
    services = workpulse_services(compose())
    commands = {name: s["command"] for name, s in services.items()}
    assert commands == {
        "migrate": ["migrate"],
        "api": ["api"],
        "worker": ["worker"],
        "scheduler": ["scheduler"],
    }
    replicas = {name: s.get("deploy", {}).get("replicas", 1) for name, s in services.items()}
    assert replicas == {"migrate": 1, "api": 2, "worker": 2, "scheduler": 1}
    migrate = services.pop("migrate")
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name, service in services.items():
        needs = service["depends_on"]
        assert needs["migrate"] == {"condition": "service_completed_successfully"}, name
        assert needs["redis"]["condition"] == "service_healthy", name
        assert needs["pgbouncer"]["condition"] == "service_healthy", name


def test_the_processes_use_pgbouncer_with_the_pooler_setting_and_migrate_goes_direct() -> None:
    services = workpulse_services(compose())
    for name, service in services.items():
        env = _env(service)
        host = re.search(r"@([^:/]+):(\d+)/", env["WORKPULSE_DATABASE_URL"])
        assert host is not None, name
        if name == "migrate":
            assert (host.groups(), env["WORKPULSE_DATABASE_POOLER"]) == (
                ("postgres", "5432"),
                "direct",
            )
        else:
            assert (host.groups(), env["WORKPULSE_DATABASE_POOLER"]) == (
                ("pgbouncer", "6432"),
                "pgbouncer",
            )
        assert env["WORKPULSE_REDIS_URL"].startswith("redis://redis:6379/")
        unknown = {k for k in env if k.startswith("WORKPULSE_")} - {
            "WORKPULSE_" + f.upper() for f in Settings.model_fields
        }
        assert not unknown, (name, unknown)


def test_no_secret_is_written_in_the_compose_file() -> None:
    """Passwords and the JWT secret come from the environment (or `.env`) at `up` time, and
    `up` stops when they are missing (`${NAME:?message}`)."""
    document = compose()
    for name, service in document["services"].items():
        for key, value in _env(service).items():
            text = value
            for match in INTERPOLATION.finditer(value):
                if "PASSWORD" in match.group(1) or "SECRET" in match.group(1):
                    assert (match.group(2) or "").startswith(":?"), (name, key)
                text = text.replace(match.group(0), "")
            if re.search("PASSWORD|SECRET", key):
                assert text == "", (name, key, "a literal secret")
            assert not re.search(r"://[^:/@]+:[^$@/][^@/]*@", text), (name, key, "literal password")


def test_graceful_stop_is_given_longer_than_the_processes_take() -> None:
    for name, service in workpulse_services(compose()).items():
        grace = service["stop_grace_period"]
        assert grace.endswith("s"), grace
        timeout = int(_env(service)["WORKPULSE_GRACEFUL_TIMEOUT_SECONDS"])
        assert int(grace[:-1]) > timeout, name


def test_only_http_processes_keep_the_image_health_check() -> None:
    services = workpulse_services(compose())
    checks = {name: healthcheck_of(service) for name, service in services.items()}
    assert checks["api"] is not None
    assert {name for name, check in checks.items() if check is None} == {
        "migrate",
        "worker",
        "scheduler",
    }
