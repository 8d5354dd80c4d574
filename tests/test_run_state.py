"""state.json round-trips losslessly and refuses what it cannot read."""

import json

import pytest

from sparta.config import TournamentConfig
from sparta.pipeline.loop import RunDirectoryError, run_chunked
from sparta.pipeline.state import RunState
from sparta.rundir import read_jsonl
from sparta.tournament import ReputationState, update_pair


def test_state_file_round_trip(tmp_path):
    cfg = TournamentConfig()
    rep = ReputationState.initial(["a", "b", "c"], cfg)
    update_pair(rep, "a", "b", 8.0, 2.5, cfg)
    update_pair(rep, "b", "c", 1.0 / 7.0, 6.0, cfg)
    state = RunState(seed=42, members=["a", "b", "c"], reputation=rep)
    state.mark(1, "matches")
    state.mark(1, "responses")
    path = tmp_path / "state.json"
    state.save(path)
    again = RunState.load(path)
    assert again == state
    assert again.reputation.ratings["b"] == rep.ratings["b"]  # floats survive exactly
    assert again.done(1, "responses") and not again.done(1, "judgments") and not again.round_complete(1)


def test_state_version_is_checked(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"version": 99}))
    with pytest.raises(ValueError, match="version"):
        RunState.load(path)


def test_run_chunked_resumes_from_the_partial_file(tmp_path):
    path = tmp_path / "out.jsonl"
    calls = []

    def work(chunks):
        for chunk, index in chunks:
            calls.append(index)
            if index == 2 and len(calls) == 3:
                raise KeyboardInterrupt  # a crash in the middle of the stage
            yield [{"x": x} for x in chunk]

    items = list(range(10))
    with pytest.raises(KeyboardInterrupt):
        run_chunked(path, items, work, 3, lambda n: None)
    assert not path.exists() and (tmp_path / "out.partial.jsonl").exists()
    resumed = []
    rows = run_chunked(path, items, work, 3, resumed.append)
    assert rows == [{"x": x} for x in items]
    assert calls == [0, 1, 2, 2, 3] and resumed == [6]
    assert not (tmp_path / "out.partial.jsonl").exists()


def test_run_chunked_checkpoints_groups_and_keeps_finished_chunks_on_an_error(tmp_path):
    """A parallel tribe's chunks: the partial file grows a group at a time, and an error keeps every finished chunk."""
    path, partial = tmp_path / "out.jsonl", tmp_path / "out.partial.jsonl"
    seen_on_disk = []

    def work(chunks):
        for chunk, index in chunks:
            seen_on_disk.append(len(read_jsonl(partial)) if partial.exists() else 0)
            if index == 3:
                raise RuntimeError("a worker died")
            yield [{"x": x} for x in chunk]

    with pytest.raises(RuntimeError, match="worker died"):
        run_chunked(path, list(range(10)), work, 2, lambda n: None, group=2)
    assert seen_on_disk == [0, 0, 4, 4]  # written after chunks 0-1, not after chunk 0 or 2 alone
    assert read_jsonl(partial) == [{"x": x} for x in range(6)]  # chunk 2 finished before the error: kept
    rows = run_chunked(
        path, list(range(10)), lambda chunks: ([{"x": x} for x in c] for c, _ in chunks), 2, lambda n: None
    )
    assert rows == [{"x": x} for x in range(10)] and not partial.exists()


def test_run_chunked_rejects_a_torn_partial_file(tmp_path):
    (tmp_path / "out.partial.jsonl").write_text('{"x": 0}\n{"x": 1}\n')
    with pytest.raises(RunDirectoryError, match="chunk boundary"):
        run_chunked(tmp_path / "out.jsonl", list(range(10)), lambda chunks: iter([]), 3, lambda n: None)


def test_run_files_are_readable_by_others(tmp_path):
    import os
    import stat

    from sparta.rundir import write_json

    write_json(tmp_path / "x.json", {"a": 1})
    mode = stat.S_IMODE(os.stat(tmp_path / "x.json").st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
