import os
import threading

import pytest

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
