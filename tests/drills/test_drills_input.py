"""Fault drills on what comes from outside: hostile event lines and generated CSVs.

Event lines (milo_tui.events: LineSplitter, decode, read_pipe, read_journal, follow_journal, and
the TUI's RunState that folds them). What must survive: every valid event, in order; each bad
line (malformed, truncated, 5 MB, deeply nested, wrong types, not UTF-8, NaN/Infinity) costs at most one
reported error and never an exception; the reader's buffer stays bounded.

CSVs (milo_tui.engine.data.load_data), generated with hypothesis: every input either loads into
NaN-free arrays consistent with its summary, or raises BadInputError — never another exception.
"""

from __future__ import annotations

import os
import random
import string
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from milo_tui import events as ev
from milo_tui.engine.data import load_data
from milo_tui.errors import BadInputError
from milo_tui.runstate import RunState


def good_line(seq: int, etype: str = ev.LOG, **data) -> bytes:
    data = data or {"level": "info", "message": f"event {seq}"}
    return (ev.Event(type=etype, data=data, seq=seq, ts=1000.0 + seq).to_json() + "\n").encode()


HOSTILE = {
    "malformed JSON": b'{"v":1,"seq":5,"ts":1.0,"type":"log","data":{"level":"info",}\n',
    "truncated line": b'{"v":1,"seq":5,"ts":1.0,"type":"lo\n',
    "5 MB line": b'{"v":1,"seq":5,"ts":1.0,"type":"log","data":{"message":"' + b"x" * (5 << 20) + b'"}}\n',
    "deeply nested": b'{"v":1,"seq":5,"ts":1.0,"type":"log","data":{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}}\n",
    "top-level array": b'[1,2,3]\n',
    "seq is text": b'{"v":1,"seq":"5","ts":1.0,"type":"log","data":{}}\n',
    "data is a list": b'{"v":1,"seq":5,"ts":1.0,"type":"log","data":[1]}\n',
    "type is a number": b'{"v":1,"seq":5,"ts":1.0,"type":7,"data":{}}\n',
    "ts is a bool": b'{"v":1,"seq":5,"ts":true,"type":"log","data":{}}\n',
    "negative seq": b'{"v":1,"seq":-1,"ts":1.0,"type":"log","data":{}}\n',
    "not UTF-8": b'{"v":1,"seq":5,"ts":1.0,"type":"log","data":{"message":"\xff\xfe\x80"}}\n',
    "NUL bytes": b"\x00\x00\x00\n",
}
# Decodable but wrong inside: the reader keeps them, the TUI's state must shrug them off.
ODD_BUT_DECODABLE = {
    "payload of wrong types": (b'{"v":1,"seq":5,"ts":1.0,"type":"model_finished","data":{"key":[1],"metrics":"high",'
                               b'"completed":"many","total":null}}\n'),
    "unknown type": b'{"v":99,"seq":5,"ts":1.0,"type":"from_the_future","data":{"x":1}}\n',
    "run_started of wrong shapes": (b'{"v":1,"seq":5,"ts":1.0,"type":"run_started","data":{"class_labels":"ab",'
                                    b'"phases":[],"total_models":"x","config":7}}\n'),
}


def hostile_stream() -> tuple[bytes, int, int]:
    """Valid events interleaved with every hostile line; returns (bytes, valid count, hostile count)."""
    parts, seq = [], 0
    for line in list(HOSTILE.values()) + list(ODD_BUT_DECODABLE.values()):
        parts.append(good_line(seq))
        seq += 1
        parts.append(line)
    parts.append(good_line(seq))
    return b"".join(parts), seq + 1, len(HOSTILE)


def random_chunks(data: bytes, rng: random.Random) -> list[bytes]:
    chunks, i = [], 0
    while i < len(data):
        size = rng.choice((1, 7, 4096, 65536, 1 << 20))
        chunks.append(data[i:i + size])
        i += size
    return chunks


def check_decoded(events: list[ev.Event], errors: list[str], valid: int, hostile: int) -> None:
    logs = [e for e in events if e.type == ev.LOG]
    assert [e.seq for e in logs] == list(range(valid)), "a valid event was lost or reordered"
    assert len(errors) == hostile, errors
    assert len(events) == valid + len(ODD_BUT_DECODABLE)


@pytest.mark.parametrize("seed", range(3))
def test_line_splitter_and_decoder_survive_every_hostile_line_in_any_chunking(seed):
    data, valid, hostile = hostile_stream()
    splitter = ev.LineSplitter()
    events, errors = [], []
    for chunk in random_chunks(data, random.Random(seed)):
        batch = ev.decode_lines(splitter.feed(chunk))
        events += batch.events
        errors += batch.errors
        assert len(splitter.pending()) <= ev.MAX_LINE_BYTES + (1 << 20), "the reader buffered without bound"
    check_decoded(events, errors, valid, hostile)


def test_each_hostile_line_alone_is_one_reported_error():
    for name, line in HOSTILE.items():
        decoded = ev.decode_lines(ev.LineSplitter().feed(line))
        assert not decoded.events and len(decoded.errors) == 1, name


def test_read_pipe_survives_a_hostile_writer_and_a_final_line_cut_mid_way():
    data, valid, hostile = hostile_stream()
    data += b'{"v":1,"seq":99,"ts":1.0,"type":"run_fin'  # the writer died mid-line
    read_fd, write_fd = os.pipe()

    def writer():
        with os.fdopen(write_fd, "wb", buffering=0) as pipe:
            for chunk in random_chunks(data, random.Random(7)):
                pipe.write(chunk)

    thread = threading.Thread(target=writer)
    thread.start()
    events, errors = [], []
    try:
        for batch in ev.read_pipe(read_fd):
            events += batch.events
            errors += batch.errors
    finally:
        thread.join()
        os.close(read_fd)
    check_decoded(events, errors, valid, hostile + 1)


def test_journal_readers_survive_hostile_lines(tmp_path):
    data, valid, hostile = hostile_stream()
    journal = tmp_path / "events.jsonl"
    journal.write_bytes(data + b'{"v":1,"seq":99,"ts":1.0,"type":"lo')
    decoded = ev.read_journal(journal)
    check_decoded(decoded.events, decoded.errors, valid, hostile + 1)

    stop = threading.Event()
    followed, follow_errors = [], []
    for batch in ev.follow_journal(journal, stop, poll=0.01):
        followed += batch.events
        follow_errors += batch.errors
        if len(followed) >= valid + len(ODD_BUT_DECODABLE):
            stop.set()
    # A follower waits for a cut final line to be completed, so it reports one error fewer.
    check_decoded(followed, follow_errors, valid, hostile)


def test_tui_state_folds_hostile_and_odd_events_without_raising():
    data, valid, _ = hostile_stream()
    decoded = ev.decode_lines(ev.LineSplitter().feed(data))
    state = RunState()
    state.apply_batch(decoded.events, decoded.errors)
    assert state.events_applied == len(decoded.events)
    assert state.decode_errors == len(decoded.errors)
    # The state still renders its derived figures after all of that.
    state.progress, state.eta_seconds, state.percent, state.best_model, state.memory_status


NAN_LINE = b'{"v":1,"seq":5,"ts":1.0,"type":"memory","data":{"used_bytes":NaN,"limit_bytes":Infinity,"pss_bytes":-Infinity}}\n'


def test_nan_and_infinity_in_a_payload_are_refused_or_harmless():
    decoded = ev.decode_lines(ev.LineSplitter().feed(good_line(0) + NAN_LINE + good_line(1)))
    assert [e.seq for e in decoded.events if e.type == ev.LOG] == [0, 1]
    state = RunState()
    state.apply_batch(decoded.events, decoded.errors)
    assert state.percent >= 0 and state.limit_bytes >= 0 and state.used_bytes >= 0


# -- CSVs -----------------------------------------------------------------------------------------

CELL = st.one_of(
    st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "NA", "nan", "inf", "-inf", "1e309", "yes", "0x1F", "1,5", '"q"', "é", " "]),
    st.text(alphabet=string.printable, max_size=6),
)
NAME = st.one_of(st.sampled_from(["target", "a", "b", "", "Unnamed: 0", "target "]),
                 st.text(alphabet=string.ascii_letters + ",\"' é", min_size=1, max_size=5))


@st.composite
def csv_pair(draw) -> tuple[str, str]:
    columns = draw(st.lists(NAME, min_size=1, max_size=5))
    if draw(st.booleans()):
        columns.append("target")
    classes = draw(st.lists(st.sampled_from(["0", "1", "2", "x", "", "1.0"]), min_size=1, max_size=3))

    def table(rows: int) -> str:
        lines = [",".join(columns)]
        for _ in range(rows):
            cells = [draw(st.sampled_from(classes)) if name == "target" else draw(CELL) for name in columns]
            lines.append(",".join(cells))
        return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n", "\r\n"]))

    return table(draw(st.integers(0, 40))), table(draw(st.integers(0, 8)))


def _check_loaded(arrays: dict, summary) -> None:
    for name in ("X_fit", "X_internal", "X_test"):
        # Rows with missing values are dropped. (Infinity is test_a_csv_with_infinity_is_refused_up_front's.)
        assert not np.isnan(arrays[name]).any(), f"{name} holds NaN"
    assert len(summary.class_labels) >= 2
    assert arrays["X_fit"].shape[1] == summary.features == arrays["X_test"].shape[1]
    assert len(arrays["y_fit"]) + len(arrays["y_internal"]) == summary.train_rows


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(pair=csv_pair(), raw_noise=st.one_of(st.none(), st.binary(max_size=64)))
def test_generated_csvs_load_or_raise_bad_input(tmp_path, pair, raw_noise):
    train_text, test_text = pair
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train.write_bytes(train_text.encode() + (raw_noise or b""))
    test.write_text(test_text)
    try:
        arrays, summary = load_data(train, test, "target", cv_folds=2, test_size=0.2, seed=0)
    except BadInputError as exc:
        assert str(exc).strip()
        return
    _check_loaded(arrays, summary)


def test_a_csv_with_infinity_is_refused_up_front(tmp_path):
    rows = "\n".join(f"{i},{i % 2}" for i in range(40))
    (tmp_path / "train.csv").write_text("a,target\n" + rows + "\ninf,1\n")
    (tmp_path / "test.csv").write_text("a,target\n1,0\n2,1\n")
    with pytest.raises(BadInputError):
        load_data(tmp_path / "train.csv", tmp_path / "test.csv", "target", cv_folds=2, test_size=0.2, seed=0)
