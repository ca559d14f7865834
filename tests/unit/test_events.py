import json
import os
import threading

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from milo_tui import events as ev


def test_writer_numbers_events_and_continues_the_journal(tmp_path):
    journal = tmp_path / "events.jsonl"
    writer = ev.EventWriter(journal, clock=lambda: 100.0)
    writer.emit(ev.LOG, level="info", message="a")
    writer.emit(ev.LOG, level="info", message="b", value=float("nan"))
    writer.close()
    again = ev.EventWriter(journal, clock=lambda: 101.0)  # a resumed run continues the sequence
    again.emit(ev.LOG, level="info", message="c")
    again.close()
    events = ev.read_journal(journal).events
    assert [e.seq for e in events] == [0, 1, 2]
    assert events[1].data["value"] is None  # NaN is not JSON
    assert [e.data["message"] for e in events] == ["a", "b", "c"]


def test_pipe_and_journal_get_the_same_lines(tmp_path):
    read_fd, write_fd = os.pipe()
    writer = ev.EventWriter(tmp_path / "e.jsonl", write_fd)
    for i in range(100):
        writer.emit(ev.LOG, level="info", message=str(i))
    writer.close()
    piped = [e for batch in ev.read_pipe(read_fd) for e in batch.events]
    os.close(read_fd)
    journal = ev.read_journal(tmp_path / "e.jsonl").events
    assert [e.to_json() for e in piped] == [e.to_json() for e in journal]
    assert len(piped) == 100


def test_writer_survives_a_reader_that_went_away(tmp_path):
    read_fd, write_fd = os.pipe()
    writer = ev.EventWriter(tmp_path / "e.jsonl", write_fd)
    os.close(read_fd)  # the TUI quit and left the run training
    for i in range(10):
        writer.emit(ev.LOG, level="info", message=str(i))
    writer.close()
    assert len(ev.read_journal(tmp_path / "e.jsonl").events) == 10


def test_writer_does_not_block_on_a_stuck_reader(tmp_path):
    read_fd, write_fd = os.pipe()
    writer = ev.EventWriter(tmp_path / "e.jsonl", write_fd)
    done = threading.Event()

    def flood():
        for i in range(20000):  # far more than a pipe buffer holds
            writer.emit(ev.LOG, level="info", message="x" * 100)
        done.set()

    thread = threading.Thread(target=flood)
    thread.start()
    assert done.wait(20), "emit blocked on a reader that never reads"
    thread.join()
    writer.close()
    os.close(read_fd)


@pytest.mark.parametrize("line, reason", [
    (b"not json", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"v":1,"seq":0,"ts":1}', "missing 'type'"),
    (b'{"v":1,"seq":-1,"ts":1,"type":"log"}', "bad 'seq'"),
    (b'{"v":1,"seq":0,"ts":"now","type":"log"}', "bad 'ts'"),
    (b'{"v":1,"seq":0,"ts":1,"type":"log","data":[]}', "'data' is not an object"),
    (b"\xff\xfe", "not UTF-8"),
])
def test_decode_reports_garbled_lines(line, reason):
    with pytest.raises(ev.EventDecodeError, match=reason):
        ev.decode(line)


def test_unknown_types_decode_for_readers_to_ignore():
    event = ev.decode(b'{"v":1,"seq":3,"ts":1.5,"type":"from_the_future","data":{"x":1}}')
    assert event.type == "from_the_future" and event.data == {"x": 1}


def test_splitter_handles_partial_and_oversized_lines():
    splitter = ev.LineSplitter()
    good = ev.Event(ev.LOG, {"level": "info", "message": "hi"}).to_json().encode()
    assert splitter.feed(good[:10]) == []
    assert splitter.feed(good[10:] + b"\n") == [good]
    huge = b"x" * (ev.MAX_LINE_BYTES + 10)
    out = splitter.feed(huge) + splitter.feed(b"tail\n" + good + b"\n")
    decoded = ev.decode_lines(out)
    assert len(decoded.errors) == 1 and "longer than" in decoded.errors[0]
    assert len(decoded.events) == 1


def test_follow_journal_replays_then_follows(tmp_path):
    journal = tmp_path / "e.jsonl"
    writer = ev.EventWriter(journal)
    writer.emit(ev.LOG, level="info", message="before")
    stop = threading.Event()
    seen = []

    def follow():
        for batch in ev.follow_journal(journal, stop, poll=0.02):
            seen.extend(batch.events)
            if any(e.type == ev.RUN_FINISHED for e in batch.events):
                stop.set()

    thread = threading.Thread(target=follow)
    thread.start()
    writer.emit(ev.LOG, level="info", message="after")
    writer.emit(ev.RUN_FINISHED, status="completed")
    writer.close()
    thread.join(10)
    assert not thread.is_alive()
    assert [e.type for e in seen] == [ev.LOG, ev.LOG, ev.RUN_FINISHED]


def test_schema_file_is_valid_and_covers_every_type():
    import jsonschema

    from engine_helpers import SCHEMA

    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    covered = {rule["if"]["properties"]["type"]["const"] for rule in SCHEMA["allOf"]}
    assert covered == set(ev.EVENT_TYPES)


# The reader's fast paths (one shared JSON decoder, one split per chunk) must read exactly what the
# plain ones did: these compare them with json.loads and with a line-at-a-time splitter.

def _decoded_by_json_loads(line: bytes) -> ev.Event | str:
    """What decode() gives, computed with json.loads as the reader did before sharing one decoder."""
    try:
        obj = json.loads(line.decode("utf-8"), parse_constant=ev._reject_constant)
    except (json.JSONDecodeError, RecursionError) as exc:
        return f"not JSON: {exc}"
    except ValueError as exc:
        return str(exc)
    return ev.Event(obj["type"], obj.get("data", {}), obj["seq"], float(obj["ts"]), obj["v"])


@pytest.mark.parametrize("line", [
    b'{"v":1,"seq":0,"ts":1,"type":"log","data":{"message":"ok"}}',
    b'  \t{"v":1,"seq":0,"ts":1,"type":"log"}\r',  # JSON whitespace either side
    b'\xef\xbb\xbf{"v":1,"seq":0,"ts":1,"type":"log"}',  # a byte-order mark: json.loads refuses it
    b'{"v":1,"seq":0,"ts":1,"type":"log","data":{"x":NaN}}',
    b'{"v":1,"seq":0,"ts":1,"type":"log","data":{"x":-Infinity}}',
    b'{"v":1,"seq":0,"ts":1,"type":"log"} {"v":1,"seq":1,"ts":1,"type":"log"}',  # extra data
    b'{"v":1,"seq":0,"ts":1,"type":"log","data":' + b"[" * 5000 + b"]" * 5000 + b"}",  # too deep
    b'{"v":1,"seq":0,"ts":1,"type":"log",',
])
def test_decode_reads_and_refuses_what_json_loads_does(line):
    expected = _decoded_by_json_loads(line)
    try:
        assert ev.decode(line) == expected
    except ev.EventDecodeError as exc:
        assert str(exc) == expected


def _split_one_line_at_a_time(chunks: list[bytes]) -> list[bytes]:
    """The splitter as it was before it split each chunk in one pass: find, cut, shift, per line."""
    lines: list[bytes] = []
    buffer, discarding = bytearray(), False
    for chunk in chunks:
        buffer += chunk
        while True:
            cut = buffer.find(b"\n")
            if cut < 0:
                if len(buffer) > ev.MAX_LINE_BYTES:
                    if not discarding:
                        lines.append(b"\x00oversized")
                    discarding = True
                    buffer.clear()
                break
            line = bytes(buffer[:cut])
            del buffer[: cut + 1]
            if discarding:
                discarding = False
                continue
            if line.strip():
                lines.append(line)
    return lines + [bytes(buffer)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(st.sampled_from([b"\n", b"{}", b"  ", b"abcdefgh", b"x" * 20, b"\r\n", b"\n\n"]), max_size=40),
       cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_splitter_gives_the_lines_of_a_one_line_at_a_time_splitter_in_any_chunking(monkeypatch, pieces, cuts):
    monkeypatch.setattr(ev, "MAX_LINE_BYTES", 24)  # small, so oversized lines happen within a chunk and across chunks
    data = b"".join(pieces)
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    chunks = [data[a:b] for a, b in zip(bounds, bounds[1:])]
    splitter = ev.LineSplitter()
    lines = [line for chunk in chunks for line in splitter.feed(chunk)]
    assert lines + [splitter.pending()] == _split_one_line_at_a_time(chunks)
