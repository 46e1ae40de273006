"""Load for bench/ingest that wrk cannot make: an open-loop client at a fixed rate, and batches
of 500 pings; both over a minimal keep-alive HTTP/1.1 client on asyncio (uvloop), cheap enough
(~30-40 µs of CPU a request) to leave the machine to the servers.

Fixed rate: request i is due at start + i / rate whatever happened before (open loop, like
wrk2); its latency is measured from that due time, so a request that waited for a free
connection because the server fell behind counts its wait ("coordinated omission" corrected).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from procs import HOST, Device

APPS: list[dict[str, object]] = [
    {"app_name": "Editor"},
    {"app_name": "Browser", "url": "https://github.com/workpulse/workpulse/pull/4"},
    {"app_name": "Browser", "url": "https://www.python.org/doc/"},
    {"app_name": "Slack", "title": "general"},
    {"app_name": "Terminal"},
]


class Connection:
    """One keep-alive HTTP/1.1 connection; `send` writes a whole request and reads one
    answer (status and body; uvicorn always sends Content-Length)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 22)
        return cls(reader, writer)

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        self._writer.write(raw)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"content-length:")
        length = int(lower[at + 15 : lower.find(b"\r\n", at)]) if at >= 0 else 0
        return status, await self._reader.readexactly(length)

    def close(self) -> None:
        self._writer.close()


def post(port: int, token: str, body: bytes) -> bytes:
    return (
        f"POST /usage/track HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


@dataclass
class Tally:
    """What the server answered, summed over items (one ping per request in single mode)."""

    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, from the due time
    first_errors: list[str] = field(default_factory=list)

    def answer(self, status: int, body: bytes) -> None:
        self.requests += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status == 202:
            found = orjson.loads(body)
            self.accepted += found["accepted"]
            self.duplicates += found.get("duplicates", 0)  # the naive app has no such count
            self.rejected += found.get("rejected", 0)
            if found.get("rejected") and len(self.first_errors) < 3:
                self.first_errors.append(body[:300].decode(errors="replace"))
        elif len(self.first_errors) < 3:
            self.first_errors.append(f"{status}: {body[:300].decode(errors='replace')}")

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


class SinglePings:
    """Request i: one ping of device i % len(devices), each device's clock stepping `step` s
    from `first` (epoch seconds), like an agent's samples. Every `repeat_every`-th request
    (0: never) sends again the request made `repeat_every // 2` before it: the same ping with
    the same event id, which the server must answer `duplicate`."""

    def __init__(
        self,
        port: int,
        devices: Sequence[Device],
        *,
        first: float,
        step: float = 5.0,
        tag: str,
        repeat_every: int = 0,
        seed: int = 1,
    ) -> None:
        self._port = port
        self._devices = devices
        self._clocks = [first] * len(devices)
        self._step = step
        self._tag = tag
        self._repeat_every = repeat_every
        self._rng = random.Random(seed)
        self._made: dict[int, bytes] = {}
        self.repeats = 0

    def __call__(self, i: int) -> bytes:
        if self._repeat_every and i % self._repeat_every == self._repeat_every - 1:
            earlier = i - self._repeat_every // 2
            if earlier in self._made:
                self.repeats += 1
                return self._made.pop(earlier)
        k = i % len(self._devices)
        self._clocks[k] += self._step + self._rng.uniform(-1, 1)
        ping = dict(self._rng.choice(APPS))
        ping.update(
            timestamp=stamp(self._clocks[k]),
            idle=self._rng.random() < 0.05,
            event_id=f"{self._tag}-{i}",
        )
        raw = post(self._port, self._devices[k].token, orjson.dumps(ping))
        if self._repeat_every and i % self._repeat_every == self._repeat_every // 2 - 1:
            self._made[i] = raw
        return raw


async def fixed_rate(
    port: int,
    make: Callable[[int], bytes],
    *,
    rate: float,
    seconds: float,
    connections: int,
    tally: Tally,
    warmup: float = 0.0,
) -> float:
    """Sends `rate * seconds` requests at `rate`/s over `connections` connections; returns the
    achieved rate (answers / time from the first due time to the last answer). The latencies
    of requests due in the first `warmup` seconds are not kept (their answers are counted)."""
    loop = asyncio.get_running_loop()
    total = int(rate * seconds)
    queue: asyncio.Queue[tuple[bytes, float] | None] = asyncio.Queue()
    pool = [await Connection.open(port) for _ in range(connections)]

    async def worker(conn: Connection) -> None:
        while (job := await queue.get()) is not None:
            raw, due = job
            try:
                status, body = await conn.send(raw)
            except (OSError, asyncio.IncompleteReadError) as exc:
                # Counted as status 0 (the item's fate is unknown); a new connection goes on.
                status, body = 0, repr(exc).encode()
                conn.close()
                conn = await Connection.open(port)
            if due >= start + warmup:
                tally.latencies.append(loop.time() - due)
            tally.answer(status, body)
        conn.close()

    workers = [asyncio.create_task(worker(conn)) for conn in pool]
    start = loop.time() + 0.05
    sent = 0
    while sent < total:
        due_now = min(total, int((loop.time() - start) * rate) + 1)
        while sent < due_now:
            queue.put_nowait((make(sent), start + sent / rate))
            sent += 1
        # Until the next request is due (no busy polling: the client's CPU is the servers').
        await asyncio.sleep(max(0.0, start + sent / rate - loop.time()))
    for _ in pool:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return tally.requests / (loop.time() - start)


def batches(
    port: int,
    devices: Sequence[Device],
    *,
    pings: int,
    per_request: int,
    first: float,
    tag: str,
    seed: int = 7,
) -> list[bytes]:
    """Requests of `per_request` pings, `pings` in all: each user's two devices sample every
    ~5 s from `first`; a user's pings are cut in time order into requests whose items are
    shuffled, and the requests of all users are interleaved, each user's in a shuffled order
    within windows of four (late and out-of-order pings, as from agents flushing buffers)."""
    rng = random.Random(seed)
    by_user: dict[str, list[Device]] = {}
    for device in devices:
        by_user.setdefault(device.user_id, []).append(device)
    users = list(by_user.values())
    per_user = pings // len(users)
    queues: list[list[bytes]] = []
    for u, own in enumerate(users):
        items = []
        clocks = [first + rng.uniform(0, 5) for _ in own]
        for n in range(per_user):
            k = n % len(own)
            clocks[k] += 5 + rng.uniform(-1, 1)
            ping = dict(rng.choice(APPS))
            ping.update(
                device_id=own[k].device_id,
                timestamp=stamp(clocks[k]),
                idle=rng.random() < 0.05,
                event_id=f"{tag}-{u}-{n}",
            )
            items.append(ping)
        requests = []
        for at in range(0, len(items), per_request):
            chunk = items[at : at + per_request]
            rng.shuffle(chunk)
            token = own[rng.randrange(len(own))].token
            requests.append(post(port, token, orjson.dumps({"pings": chunk})))
        for at in range(0, len(requests), 4):
            window = requests[at : at + 4]
            rng.shuffle(window)
            requests[at : at + 4] = window
        queues.append(requests)
    ordered = []
    while any(queues):
        for q in queues:
            if q:
                ordered.append(q.pop(0))
    return ordered


async def send_all(port: int, requests: Sequence[bytes], *, in_flight: int, tally: Tally) -> None:
    """Every request, `in_flight` at a time; a 503 (backlogged) is sent again after 0.2 s."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for raw in requests:
        queue.put_nowait(raw)

    async def worker() -> None:
        conn = await Connection.open(port)
        try:
            while not queue.empty():
                raw = queue.get_nowait()
                while True:
                    status, body = await conn.send(raw)
                    if status != 503:
                        break
                    tally.statuses[503] = tally.statuses.get(503, 0) + 1
                    await asyncio.sleep(0.2)
                tally.answer(status, body)
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(in_flight)))
