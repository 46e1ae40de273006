"""Settings as the processes read them: unknown or malformed ones stop start-up with a message that
names them; valid ones, from the environment, `.env` or an option, are honoured."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.process import entries, environment, free_port, run, started

POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
# The SECRET_KEY of the FastAPI security tutorial: long enough, and copied into many projects.
TUTORIAL_SECRET = "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d7"
SHORT_SECRET = "s3cr3t-but-only-31-bytes-long!!"

REFUSED = {
    "a misspelled variable": ({"WORKPULSE_PORTT": "1"}, "WORKPULSE_PORTT"),
    "a port that is not a number": ({"WORKPULSE_PORT": "abc"}, "WORKPULSE_PORT:"),
    "postgresql without a secret": ({"WORKPULSE_DATABASE_URL": POSTGRES}, "WORKPULSE_JWT_SECRET"),
    "a secret shorter than 32 bytes": (
        {"WORKPULSE_DATABASE_URL": POSTGRES, "WORKPULSE_JWT_SECRET": SHORT_SECRET},
        "WORKPULSE_JWT_SECRET",
    ),
    "a well-known default secret": (
        {"WORKPULSE_DATABASE_URL": POSTGRES, "WORKPULSE_JWT_SECRET": "changeme"},
        "WORKPULSE_JWT_SECRET",
    ),
    "a well-known default secret of 32 bytes or more": (
        {"WORKPULSE_DATABASE_URL": POSTGRES, "WORKPULSE_JWT_SECRET": TUTORIAL_SECRET},
        "WORKPULSE_JWT_SECRET",
    ),
    "a wildcard CORS origin": ({"WORKPULSE_CORS_ORIGINS": "*"}, "WORKPULSE_CORS_ORIGINS"),
}


@pytest.mark.parametrize(("settings", "named"), list(REFUSED.values()), ids=list(REFUSED))
async def test_a_bad_setting_stops_start_up_with_a_message_that_names_it(
    settings: dict[str, str], named: str, tmp_path: Path
) -> None:
    finished = await run("api", cwd=tmp_path, env=environment(**settings))

    assert finished.returncode != 0
    assert named in finished.stderr
    assert "Traceback" not in finished.stderr
    assert not entries(tmp_path), "nothing is created before the settings are valid"


async def test_an_unknown_key_in_the_dot_env_file_stops_start_up(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WORKPULSE_LOG_LEVEL=debug\nWORKPULSE_DATABSE_URL=sqlite:///x\n")

    finished = await run("serve", cwd=tmp_path, env=environment())

    assert finished.returncode != 0
    assert "WORKPULSE_DATABSE_URL" in finished.stderr
    assert "Traceback" not in finished.stderr
    assert not (tmp_path / "workpulse.db").exists()


async def test_a_valid_dot_env_value_is_honoured(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / ".env").write_text(f"# local overrides\nWORKPULSE_PORT={port}\nOTHER_TOOL=1\n")

    async with started("serve", cwd=tmp_path, env=environment(), port=port) as server:
        answer = await server.wait_until_answering()
        line = await server.wait_for_log(lambda e: e["event"] == "started")

        assert answer.status_code == 200
        assert line["settings"]["port"] == port
        assert await server.stop() == 0


async def test_the_port_option_outranks_the_environment_and_the_start_up_log_shows_it(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = environment(WORKPULSE_PORT=str(free_port()))

    async with started("serve", "--port", str(port), cwd=tmp_path, env=env, port=port) as server:
        answer = await server.wait_until_answering()
        line = await server.wait_for_log(lambda e: e["event"] == "started")

        assert answer.status_code == 200
        assert line["settings"]["port"] == port
        assert await server.stop() == 0
