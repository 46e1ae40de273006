"""Property-based run over the app's own OpenAPI document: every operation must answer without a
500, with a documented status code, content type and body schema. The operations come from the
document, so a new endpoint is fuzzed as soon as it exists.

The run is authenticated with a real access token of a registered owner, so protected routes get
past authentication. The operations that revoke the caller's own sessions get a fresh owner of a
fresh organization per case instead, so the shared token stays valid for the whole run. A second,
smaller run sends no token at all.

Seeded and derandomized, with a bounded number of examples per operation. The app runs in
process with its lifespan (schemathesis' ASGI transport starts it), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests import conftest
from tests.api import PASSWORD, unique_email
from workpulse.entrypoints.http.app import create_app

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# The operations that revoke the caller's own device sessions (logout-all: all of them).
REVOKING = {
    ("POST", "/auth/logout"),
    ("POST", "/auth/logout-all"),
    ("DELETE", "/auth/sessions/{session_id}"),
}


def _config(max_examples: int) -> Any:
    return schemathesis.Config.from_dict(
        {
            "seed": 20240601,
            "generation": {
                "max-examples": max_examples,
                "deterministic": True,
                "database": "none",
            },
            # Stateful links would need the whole run to share one world; not wanted here.
            "phases": {"stateful": {"enabled": False}},
        }
    )


# The document the app serves at /openapi.json (compared with the running app's below).
# Building the app opens no connection and reads no file.
DOCUMENT: dict[str, Any] = create_app(conftest.test_settings("sqlite:///unused.db")).openapi()
authenticated = schemathesis.openapi.from_dict(DOCUMENT, config=_config(30))
anonymous = schemathesis.openapi.from_dict(DOCUMENT, config=_config(8))


@dataclass(frozen=True)
class FuzzTarget:
    app: Any
    owner_token: str = ""

    def served_document(self) -> Any:
        with asgi.get_client(self.app) as http:
            return http.get("/openapi.json").json()

    def register_owner(self) -> str:
        with asgi.get_client(self.app) as http:
            response = http.post(
                "/auth/register",
                json={
                    "email": unique_email("fuzz"),
                    "password": PASSWORD,
                    "name": "Fuzzing owner",
                    "organization_name": f"Fuzz {uuid.uuid4().hex[:8]}",
                },
            )
        assert response.status_code == 201, response.text
        token: str = response.json()["access_token"]
        return token

    def token_for(self, case: Any) -> str:
        if (case.method.upper(), case.path) in REVOKING:
            return self.register_owner()
        return self.owner_token


@pytest.fixture(scope="module", params=conftest.BACKENDS)
def fuzz_target(request: pytest.FixtureRequest) -> Iterator[FuzzTarget]:
    url: str = request.getfixturevalue(f"{request.param}_url")
    app = create_app(conftest.test_settings(url))
    try:
        assert FuzzTarget(app).served_document() == DOCUMENT, "the fuzzed document is not served"
        yield FuzzTarget(app, owner_token=FuzzTarget(app).register_owner())
    finally:
        asgi.shutdown_lifespans()  # disposes the app's pools before the database goes


def test_the_revoking_operations_are_operations_of_the_document() -> None:
    operations = {
        (method.upper(), path) for path, item in DOCUMENT["paths"].items() for method in item
    }
    assert operations >= REVOKING


@authenticated.parametrize()
def test_every_operation_answers_as_documented_to_an_owner(
    case: Any, fuzz_target: FuzzTarget
) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {fuzz_target.token_for(case)}"},
        checks=CHECKS,
        app=fuzz_target.app,
    )


@anonymous.parametrize()
def test_every_operation_answers_as_documented_without_a_token(
    case: Any, fuzz_target: FuzzTarget
) -> None:
    case.call_and_validate(checks=CHECKS, app=fuzz_target.app)
