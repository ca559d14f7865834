"""The engine handle's pipe end is closed once, however many owners close it."""

import os

from milo_tui.launcher import EngineProcess


def test_closing_the_engine_pipe_twice_leaves_a_file_that_reused_its_number_open(tmp_path):
    # The app closes the pipe when it unmounts and `milo run` (or a benchmark) closes it again:
    # the second close must not close the unrelated file the kernel gave the same number meanwhile.
    read_end, write_end = os.pipe()
    os.close(write_end)
    engine = EngineProcess(popen=None, event_fd=read_end, paths=None)  # type: ignore[arg-type]
    engine.close()
    reused = os.open(tmp_path / "other", os.O_CREAT | os.O_RDWR)
    try:
        assert reused == read_end  # the lowest free number: the one just closed
        engine.close()
        os.fstat(reused)  # still open: raises OSError (EBADF) if the second close hit it
        assert engine.event_fd == -1
    finally:
        os.close(reused)
