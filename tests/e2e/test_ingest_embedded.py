"""Ping ingestion in the embedded mode: one `workpulse serve` process on SQLite, no Redis and
no database URL. The API commits each request's pings as pending (grouping concurrent requests)
and the in-process worker derives them; the result must be the domain's merge of the valid set,
exactly as with PostgreSQL and Redis (`test_ingest_scaleout.py`)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.e2e.process import environment, serving
from tests.e2e.test_ingest_scaleout import (
    check_intervals,
    check_results,
    check_stored_exactly_once,
    eventually,
    invalid_items,
    make_batches,
    no_errors,
    plan_pings,
    register_all,
    send_all,
    stored_pings,
)


async def test_one_embedded_process_stores_every_ping_once_and_derives_exactly_the_merge(
    tmp_path: Path,
) -> None:
    rng = random.Random(1500)
    now = datetime.now(UTC)
    url = f"sqlite:///{tmp_path / 'workpulse.db'}"
    async with serving("serve", cwd=tmp_path, env=environment()) as (server, health):
        assert health.status_code == 200, health.text
        assert "redis" not in health.json()["info"]
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            accounts = await register_all(client, 3)
            items = [i for n in range(3) for i in plan_pings(rng, n, 500, now)]
            items += [i for n in range(3) for i in invalid_items(n, now)]
            # One process: the repeats go to it too (in another batch or the same one).
            sent = await send_all([client], accounts, make_batches(rng, items, apis=1))

            pings = check_results(sent)
            assert len(pings) == 1500
            assert sum(s.status == "duplicate" for s in sent) > 100

            async def derived() -> bool:
                found, pending = await stored_pings(url, accounts)
                return pending == 0 and sum(found.values()) >= len(pings)

            await eventually(derived, "the in-process worker derived every pending ping")
            await check_stored_exactly_once(url, accounts, pings)
            await check_intervals(client, accounts, pings, now)
        assert await server.stop() == 0, server.output()
    no_errors(server)
