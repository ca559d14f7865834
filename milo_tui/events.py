"""The event protocol shared by the engine, the TUI and the headless CLI.

One JSON object per line: {"v": SCHEMA_VERSION, "seq": n, "ts": unix_seconds,
"type": "...", "data": {...}}. The engine writes every line to a dedicated pipe
file descriptor (so nothing printed on stdout can corrupt the stream) and
appends the same line to PROJECT/events.jsonl. Readers ignore unknown types
and report, rather than die on, garbled lines. docs/EVENTS.md documents each
type; milo_tui/schema/events.schema.json is its JSON Schema.
"""

from __future__ import annotations

import errno
import json
import os
import select
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

SCHEMA_VERSION = 1
MAX_LINE_BYTES = 1 << 20  # a longer line is garbage, not an event

# Event types. Readers must ignore any type they do not know.
RUN_STARTED = "run_started"
PHASE_CHANGED = "phase_changed"
MODEL_STARTED = "model_started"
MODEL_FINISHED = "model_finished"
MODEL_FAILED = "model_failed"
MODEL_SKIPPED = "model_skipped"
MEMORY = "memory"
ALERT = "alert"
CLEANUP = "cleanup"
STORAGE = "storage"
ARCHIVE_BATCH = "archive_batch"
LOG = "log"
RUN_FINISHED = "run_finished"

EVENT_TYPES = (
    RUN_STARTED, PHASE_CHANGED, MODEL_STARTED, MODEL_FINISHED, MODEL_FAILED,
    MODEL_SKIPPED, MEMORY, ALERT, CLEANUP, STORAGE, ARCHIVE_BATCH, LOG, RUN_FINISHED,
)

# The source document's four memory messages, used verbatim in alert events.
MSG_OPTIMIZING = "Memory optimization in progress..."
MSG_WARNING = "High memory usage detected, performing cleanup..."
MSG_CRITICAL = "Critical memory level, aggressive cleanup active..."
MSG_STOPPED = "Training stopped due to insufficient memory"


@dataclass(frozen=True)
class Event:
    type: str
    data: dict
    seq: int = 0
    ts: float = 0.0
    v: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(
            {"v": self.v, "seq": self.seq, "ts": self.ts, "type": self.type, "data": self.data},
            separators=(",", ":"),
            default=_json_default,
            allow_nan=False,
        )


class EventDecodeError(ValueError):
    """A line that is not a valid event. Readers report it and go on."""


def _json_default(obj):
    # numpy scalars and paths end up in payloads; make them plain JSON.
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def json_safe(obj):
    """NaN and infinity are not JSON; they become null."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        return json_safe(obj.item())
    return obj


def _reject_constant(token: str):
    # Python's json reads NaN and Infinity, but they are not JSON and the engine never writes them.
    raise ValueError(f"not JSON: {token} is not a JSON number")


# One decoder for every line: json.loads with an option builds a new decoder (and its scanner) per
# call, a third of the cost of reading a short event. json.loads shares its default decoder across
# threads the same way: decoding keeps no state between calls.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _parse_json(text: str):
    """json.loads(text, parse_constant=_reject_constant), with the shared decoder: same result, same errors."""
    if text.startswith("\ufeff"):  # json.loads's own check, which the decoder does not make
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    return _DECODER.decode(text)


def decode(line: str | bytes) -> Event:
    """Parse one line. Raises EventDecodeError with a short reason."""
    if isinstance(line, bytes):
        if len(line) > MAX_LINE_BYTES:
            raise EventDecodeError(f"line of {len(line)} bytes is longer than {MAX_LINE_BYTES}")
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EventDecodeError(f"not UTF-8: {exc}") from None
    if len(line) > MAX_LINE_BYTES:
        raise EventDecodeError(f"line of {len(line)} characters is too long")
    try:
        obj = _parse_json(line)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise EventDecodeError(f"not JSON: {exc}") from None
    except ValueError as exc:
        raise EventDecodeError(str(exc)) from None
    if not isinstance(obj, dict):
        raise EventDecodeError("not a JSON object")
    etype, data, seq, ts, v = obj.get("type"), obj.get("data", {}), obj.get("seq"), obj.get("ts"), obj.get("v")
    if not isinstance(etype, str) or not etype:
        raise EventDecodeError("missing 'type'")
    if not isinstance(data, dict):
        raise EventDecodeError("'data' is not an object")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise EventDecodeError("missing or bad 'seq'")
    if not isinstance(ts, (int, float)) or isinstance(ts, bool):
        raise EventDecodeError("missing or bad 'ts'")
    if not isinstance(v, int) or isinstance(v, bool):
        raise EventDecodeError("missing or bad 'v'")
    return Event(type=etype, data=data, seq=seq, ts=float(ts), v=v)


class LineSplitter:
    """Turns chunks of bytes (from a pipe or a growing file) into whole lines.

    A line longer than MAX_LINE_BYTES is dropped whole and reported as one
    oversized line, so a hostile writer cannot make a reader buffer forever.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._discarding = False

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        *complete, rest = bytes(self._buffer).split(b"\n")  # one pass: no shifting of the buffer per line
        lines: list[bytes] = []
        for line in complete:
            if self._discarding:  # the end of an oversized line
                self._discarding = False
                continue
            if line.strip():
                lines.append(line)
        self._buffer = bytearray(rest)
        if len(self._buffer) > MAX_LINE_BYTES:
            if not self._discarding:
                lines.append(b"\x00oversized")
            self._discarding = True
            self._buffer.clear()
        return lines

    def pending(self) -> bytes:
        """A final line without its newline (a writer killed mid-line)."""
        return bytes(self._buffer)


@dataclass
class DecodedLines:
    events: list[Event] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def decode_lines(lines: list[bytes]) -> DecodedLines:
    out = DecodedLines()
    for line in lines:
        if line == b"\x00oversized":
            out.errors.append(f"dropped a line longer than {MAX_LINE_BYTES} bytes")
            continue
        try:
            out.events.append(decode(line))
        except EventDecodeError as exc:
            out.errors.append(str(exc))
    return out


class EventWriter:
    """Writes events to the pipe fd (if any) and appends them to the journal.

    The pipe is non-blocking: if the reader is slow, lines wait in a backlog;
    if the reader is gone (the TUI quit), the pipe is dropped and training
    goes on with the journal alone. Thread-safe: the memory monitor and the
    training loop both emit.
    """

    MAX_BACKLOG = 8 << 20

    def __init__(self, journal: Path | None, pipe_fd: int | None = None,
                 clock: Callable[[], float] = time.time, start_seq: int | None = None) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._journal_path = journal
        self._journal_fd: int | None = None
        self.journal_error: OSError | None = None  # set when the journal could not be written
        if journal is not None:
            journal.parent.mkdir(parents=True, exist_ok=True)
            if start_seq is None:
                start_seq = last_seq(journal) + 1
            self._journal_fd = os.open(journal, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            _drop_torn_tail(self._journal_fd)
        self._seq = start_seq or 0
        self._pipe_fd = pipe_fd
        self._backlog = bytearray()
        if pipe_fd is not None:
            os.set_blocking(pipe_fd, False)

    def emit(self, etype: str, **data) -> Event:
        with self._lock:
            event = Event(type=etype, data=json_safe(data), seq=self._seq, ts=round(self._clock(), 3))
            self._seq += 1
            line = (event.to_json() + "\n").encode("utf-8")
            if self._journal_fd is not None:
                self._write_journal(line)
            self._write_pipe(line)
            return event

    def _write_journal(self, line: bytes) -> None:
        """Append one whole line, or nothing: a short write (full disk) is cut back off.

        On failure the journal is closed and `journal_error` set; the pipe goes
        on, so the reader still learns how the run ends. The engine checks
        journal_error and stops with a clear disk-full status.
        """
        start = os.lseek(self._journal_fd, 0, os.SEEK_END)
        try:
            view = memoryview(line)
            while view:
                written = os.write(self._journal_fd, view)
                view = view[written:]
        except OSError as exc:
            try:
                os.ftruncate(self._journal_fd, start)
            except OSError:
                pass
            os.close(self._journal_fd)
            self._journal_fd = None
            self.journal_error = exc

    def _write_pipe(self, line: bytes) -> None:
        if self._pipe_fd is None:
            return
        self._backlog += line
        try:
            while self._backlog:
                written = os.write(self._pipe_fd, self._backlog)
                del self._backlog[:written]
        except BlockingIOError:
            if len(self._backlog) > self.MAX_BACKLOG:
                self._drop_pipe()  # the reader is stuck; it can catch up from the journal
        except OSError as exc:
            if exc.errno in (errno.EPIPE, errno.EBADF):
                self._drop_pipe()
            else:
                raise

    def _drop_pipe(self) -> None:
        try:
            os.close(self._pipe_fd)
        except OSError:
            pass
        self._pipe_fd = None
        self._backlog.clear()

    def flush(self, timeout: float = 2.0) -> None:
        """Push what is left in the backlog before exit, waiting a little for the reader."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if self._pipe_fd is None or not self._backlog:
                    return
                self._write_pipe(b"")
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)

    def close(self) -> None:
        self.flush()
        with self._lock:
            if self._journal_fd is not None:
                os.close(self._journal_fd)
                self._journal_fd = None
            if self._pipe_fd is not None:
                self._drop_pipe()


def _drop_torn_tail(fd: int) -> None:
    """A writer killed mid-line leaves half a line; cut it so the next event starts on its own line."""
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0:
        return
    if os.pread(fd, 1, size - 1) == b"\n":
        return
    chunk = 65536
    end = size
    while end > 0:
        start = max(0, end - chunk)
        data = os.pread(fd, end - start, start)
        cut = data.rfind(b"\n")
        if cut >= 0:
            os.ftruncate(fd, start + cut + 1)
            return
        end = start
    os.ftruncate(fd, 0)


def last_seq(journal: Path) -> int:
    """The sequence number of the journal's last valid event, -1 if none."""
    try:
        size = journal.stat().st_size
    except FileNotFoundError:
        return -1
    with open(journal, "rb") as handle:
        handle.seek(max(0, size - 65536))
        tail = handle.read().splitlines()
    for line in reversed(tail):
        try:
            return decode(line).seq
        except EventDecodeError:
            continue
    return -1


def read_journal(path: Path) -> DecodedLines:
    """Every event of a journal, plus a description of each garbled line."""
    splitter = LineSplitter()
    with open(path, "rb") as handle:
        lines = splitter.feed(handle.read())
    tail = splitter.pending()
    if tail.strip():
        lines.append(tail)
    return decode_lines(lines)


def follow_journal(path: Path, stop: threading.Event, poll: float = 0.2,
                   chunk: int = 1 << 16) -> Iterator[DecodedLines]:
    """Replay the journal from the start, then follow it as it grows (tail -f).

    Yields batches until `stop` is set. Waits for the file to appear.
    """
    splitter = LineSplitter()
    handle = None
    try:
        while not stop.is_set():
            if handle is None:
                try:
                    handle = open(path, "rb")
                except FileNotFoundError:
                    stop.wait(poll)
                    continue
            data = handle.read(chunk)
            if data:
                batch = decode_lines(splitter.feed(data))
                if batch.events or batch.errors:
                    yield batch
                continue
            stop.wait(poll)
    finally:
        if handle is not None:
            handle.close()


def read_pipe(fd: int, chunk: int = 1 << 16, *, stop: threading.Event | None = None,
              poll: float = 0.2) -> Iterator[DecodedLines]:
    """Read events from the engine's pipe until it closes (the engine exited).

    With `stop`, waits at most `poll` seconds at a time and returns early once
    `stop` is set, so a reader thread can be told to let go of the pipe before
    its fd is closed (closing an fd another thread blocks on is unsafe).
    """
    splitter = LineSplitter()
    while True:
        if stop is not None:
            if stop.is_set():
                return
            if not select.select([fd], [], [], poll)[0]:
                continue
        try:
            data = os.read(fd, chunk)
        except (InterruptedError, BlockingIOError):
            continue
        if not data:
            tail = splitter.pending()
            if tail.strip():
                yield decode_lines([tail])
            return
        batch = decode_lines(splitter.feed(data))
        if batch.events or batch.errors:
            yield batch
