"""The log writer: lines reach the stream from a thread of their own, in order, none lost on a
normal exit, and a stream that blocks does not block the caller."""

from __future__ import annotations

import io
import threading

from workpulse.entrypoints.logs import _BackgroundWriter


class _Blocking(io.StringIO):
    """A stream whose writes wait until `opened` is set (a pipe whose reader lags)."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = threading.Event()

    def write(self, text: str) -> int:
        self.opened.wait()
        return super().write(text)


def test_every_line_arrives_in_order_and_close_writes_what_is_left() -> None:
    stream = io.StringIO()
    writer = _BackgroundWriter(stream)
    lines = [f"line {n}\n" for n in range(5000)]
    for line in lines:
        writer.write(line)
    writer.close()
    assert stream.getvalue() == "".join(lines)
    writer.write("after close\n")  # written at once, not lost
    assert stream.getvalue().endswith("after close\n")


def test_a_stream_that_blocks_does_not_block_the_caller() -> None:
    stream = _Blocking()
    writer = _BackgroundWriter(stream)
    for n in range(100):  # were a write to block, this loop would never end (the test times out)
        writer.write(f"{n}\n")
    assert stream.getvalue() == ""  # the stream has not taken a single line yet
    stream.opened.set()
    writer.close()
    assert stream.getvalue() == "".join(f"{n}\n" for n in range(100))
