"""Reading the deployment files the way Docker and Compose read them, enough for the tests:
Dockerfile instructions (continuations joined, JSON-array forms parsed) and compose.yaml (YAML
merge keys resolved by the loader)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
PGBOUNCER_DOCKERFILE = ROOT / "deploy" / "pgbouncer" / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    arguments: str  # the rest of the line, continuations joined

    def exec_form(self) -> list[str]:
        """The JSON-array form's words (the form an exec'd command must use)."""
        text = self.arguments
        if self.keyword == "HEALTHCHECK":
            text = text.split(" CMD ", 1)[1]
        value = json.loads(text)
        assert isinstance(value, list), text
        return [str(word) for word in value]

    def options(self) -> dict[str, str]:
        """`--name=value` options before the instruction's own arguments."""
        found = {}
        for word in shlex.split(self.arguments):
            if not word.startswith("--"):
                break
            name, _, value = word[2:].partition("=")
            found[name] = value
        return found


def instructions(path: Path) -> list[Instruction]:
    joined = re.sub(r"\\\n", " ", path.read_text())
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        result.append(Instruction(keyword.upper(), re.sub(r"\s+", " ", arguments.strip())))
    return result


def stages(path: Path) -> list[list[Instruction]]:
    """The instructions of each build stage, in order (the last one is the image)."""
    result: list[list[Instruction]] = []
    for instruction in instructions(path):
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def last(stage: list[Instruction], keyword: str) -> Instruction | None:
    found = [i for i in stage if i.keyword == keyword]
    return found[-1] if found else None


def image_environment(path: Path = DOCKERFILE) -> dict[str, str]:
    """The final stage's ENV values (the `KEY=value` form), `${PATH}`-style references left."""
    env: dict[str, str] = {}
    for instruction in stages(path)[-1]:
        if instruction.keyword == "ENV":
            for word in shlex.split(instruction.arguments):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def workpulse_services(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the image this repository's Dockerfile builds."""
    return {
        name: service
        for name, service in document["services"].items()
        if isinstance(service.get("build"), dict) and service["build"].get("context") == "."
    }


def command_of(service: dict[str, Any]) -> list[str]:
    """What the container runs: the image's ENTRYPOINT and the service's command (else CMD)."""
    final = stages(DOCKERFILE)[-1]
    entrypoint = last(final, "ENTRYPOINT")
    cmd = last(final, "CMD")
    assert entrypoint is not None
    assert cmd is not None
    command = service.get("command", cmd.exec_form())
    assert isinstance(command, list), "commands are written in the exec (list) form"
    return [*entrypoint.exec_form(), *command]


def healthcheck_of(service: dict[str, Any]) -> list[str] | None:
    """The container's health check command, or None when it is turned off."""
    check = service.get("healthcheck") or {}
    if check.get("disable"):
        return None
    if "test" in check:
        test = check["test"]
        assert test[0] in ("CMD", "CMD-SHELL"), test
        return list(test[1:])
    image_check = last(stages(DOCKERFILE)[-1], "HEALTHCHECK")
    return None if image_check is None else image_check.exec_form()
