"""The SPARTA round loop over a run directory (DESIGN sections 1 and 3).

Each round runs five stages: matches, responses, judgments, ratings, training. A stage's output file is
written atomically before ``state.json`` records the stage as finished, so a run killed at any moment resumes
at the first unfinished stage. The two long stages (responses, judgments) also keep a ``*.partial.jsonl`` of
finished chunks; chunk boundaries and seeds depend only on the configuration, so a resumed stage produces the
same lines as an uninterrupted one. A tribe that works on several chunks at once (``parallel_chunks``, e.g. Ray
workers) gets them together and the partial file grows by that many chunks at a time; finished chunks are never
lost, and which process ran a chunk never changes its lines.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sparta.backends.base import (
    Tribe,
    bind_run,
    build_tribe,
    close_tribe,
    generate_chunks,
    judge_chunks,
    parallel_chunks,
)
from sparta.config import ConfigError, SpartaConfig, dump_config, load_config
from sparta.pipeline.observer import StageObserver
from sparta.pipeline.progress import Reporter, SilentReporter
from sparta.pipeline.state import RunState
from sparta.records import Instruction, JudgeRequest, Judgment, Match, PreferencePair, Response
from sparta.rundir import (
    CONFIG_YAML,
    MATCHES,
    OUTCOMES,
    PAIRS,
    RATINGS,
    STATE_JSON,
    TRAINING,
    RunDirectoryError,
    atomic_write_text,
    jsonl_text,
    partial_path,
    read_json,
    read_jsonl,
    round_dir,
    write_json,
    write_jsonl,
)
from sparta.tasks import draw_round, load_task, split_holdout
from sparta.tournament import (
    MatchOutcome,
    PairSelection,
    ReputationState,
    derive_rng,
    derive_seed,
    judges_for,
    make_matches,
    rate_matches,
    score_table,
    select_pairs,
)
from sparta.tracking.tracker import build_observer

T = TypeVar("T")

CHUNKS_PER_STAGE = 20
"""Long stages checkpoint about this many times; more would rewrite the partial file too often."""

Chunk = tuple[Sequence[T], int]
"""One chunk of a long stage's requests and its index in the stage."""


@dataclass
class RoundStats:
    round: int
    matches: int
    rated: int
    pairs: int
    judgments: int
    judge_failures: int
    skipped_responses: int
    truncated_responses: int
    pairs_dropped_truncated: int
    training: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def combat_instructions(config: SpartaConfig) -> list[Instruction]:
    """The instructions combat may draw from: the task minus its held-out evaluation share."""
    items = load_task(config.data.task, config.data.options)
    train, _ = split_holdout(items, config.data.holdout_fraction, config.run.seed)
    if not train:
        raise RunDirectoryError(f"task {config.data.task!r} left no instructions for combat")
    return train


def _chunk_size(n: int, floor: int) -> int:
    """About CHUNKS_PER_STAGE chunks, never smaller than one batch; depends only on the stage size and config."""
    return max(floor, math.ceil(n / CHUNKS_PER_STAGE)) if n else floor


def run_chunked(
    path: Path,
    items: Sequence[T],
    work: Callable[[Sequence[Chunk[T]]], Iterable[list[dict[str, Any]]]],
    chunk: int,
    resumed: Callable[[int], None],
    group: int = 1,
) -> list[dict[str, Any]]:
    """Run ``work`` over fixed chunks of ``items``, checkpointing finished chunks in ``path``'s partial file.

    ``work`` gets the unfinished chunks and yields each one's rows in chunk order; the partial file is rewritten
    after every ``group`` chunks, and on an error with the chunks finished so far. Every chunk is encoded to JSON
    once and its text kept, so a rewrite copies text instead of encoding every row again (which made checkpointing
    cost the square of the stage). ``work`` reports its own progress; ``resumed`` is told how many items an
    earlier process already finished.
    """
    partial = partial_path(path)
    rows = read_jsonl(partial) if partial.exists() else []
    if len(rows) > len(items) or (len(rows) % chunk and len(rows) != len(items)):
        raise RunDirectoryError(
            f"{partial}: {len(rows)} lines do not end on a chunk boundary; delete it to redo the stage"
        )
    resumed(len(rows))
    saved = len(rows)
    texts = [jsonl_text(rows)]
    pending = [(items[start : start + chunk], start // chunk) for start in range(len(rows), len(items), chunk)]
    try:
        for done, chunk_rows in enumerate(work(pending), 1):
            rows.extend(chunk_rows)
            texts.append(jsonl_text(chunk_rows))
            if done % group == 0:
                atomic_write_text(partial, "".join(texts))
                saved = len(rows)
    except BaseException:
        if len(rows) > saved:  # chunks that finished before the error are kept
            atomic_write_text(partial, "".join(texts))
        raise
    atomic_write_text(path, "".join(texts))
    partial.unlink(missing_ok=True)
    return rows


class RoundLoop:
    """Runs (or resumes) a SPARTA run in ``out_dir`` with ``tribe`` playing the pool."""

    def __init__(
        self,
        config: SpartaConfig,
        out_dir: Path,
        tribe: Tribe,
        reporter: Reporter | None = None,
        observer: StageObserver | None = None,
        instructions: list[Instruction] | None = None,
    ):
        self.config = config
        self.out = Path(out_dir)
        self.tribe = tribe
        self.reporter = reporter or SilentReporter()
        self.observer = observer if observer is not None else build_observer(config, self.out)
        self.state_path = self.out / STATE_JSON
        self.members = config.member_names()
        self._instructions = instructions
        self.state: RunState | None = None

    # -- set-up -------------------------------------------------------------------------------------------
    def open(self) -> RunState:
        self.out.mkdir(parents=True, exist_ok=True)
        check_same_config(self.config, self.out)
        atomic_write_text(self.out / CONFIG_YAML, dump_config(self.config))
        bind_run(self.tribe, self.out)
        if self.state_path.exists():
            state = RunState.load(self.state_path)
            if state.members != self.members or state.seed != self.config.run.seed:
                raise RunDirectoryError(f"{self.state_path}: members or seed differ from the configuration")
            self._restore_tribe(state)
            return state
        state = RunState(
            self.config.run.seed, self.members, ReputationState.initial(self.members, self.config.tournament)
        )
        state.save(self.state_path)
        return state

    def _restore_tribe(self, state: RunState) -> None:
        trained = [r for r in sorted(state.finished) if state.done(r, "training")]
        trained = [r for r in trained if (round_dir(self.out, r) / TRAINING).exists()]
        for round_index in reversed(trained):
            round_path = round_dir(self.out, round_index)
            if not _training_skipped(round_path):
                self.reporter.log(f"restoring the pool as trained in round {round_index}")
                self.tribe.load_round(round_path)
                return

    @property
    def instructions(self) -> list[Instruction]:
        if self._instructions is None:
            self._instructions = combat_instructions(self.config)
        return self._instructions

    # -- the loop ----------------------------------------------------------------------------------------
    def run(self) -> list[RoundStats]:
        state = self.state = self.open()
        try:
            self.observer.opened(state)
            return [self.run_round(state, round_index) for round_index in range(1, self.config.run.rounds + 1)]
        finally:
            self.observer.close()

    def run_round(self, state: RunState, round_index: int) -> RoundStats:
        round_path = round_dir(self.out, round_index)
        matches = self._stage_matches(state, round_index, round_path)
        responses = self._stage_responses(state, round_index, matches)
        judgments = self._stage_judgments(state, round_index, matches, responses)
        outcomes, selection = self._stage_ratings(state, round_index, round_path, matches, responses, judgments)
        training = self._stage_training(state, round_index, round_path, selection, responses)
        return RoundStats(
            round=round_index,
            matches=len(matches),
            rated=sum(o.rated for o in outcomes),
            pairs=len(selection.pairs),
            judgments=len(judgments),
            judge_failures=sum(j.score is None for j in judgments),
            skipped_responses=sum(1 for x in responses.values() if x.meta.get("skipped")),
            truncated_responses=sum(x.truncated for x in responses.values()),
            pairs_dropped_truncated=selection.dropped_truncated,
            training=training,
        )

    def _finish(self, state: RunState, round_index: int, stage: str) -> None:
        state.mark(round_index, stage)
        state.save(self.state_path)
        self.observer.stage_finished(state, round_index, stage)

    def _stage_matches(self, state: RunState, round_index: int, round_path: Path) -> list[Match]:
        path = round_path / MATCHES
        if state.done(round_index, "matches"):
            return [Match.from_dict(d) for d in read_jsonl(path)]
        n = self.config.run.instructions_per_round
        if n > len(self.instructions):
            self.reporter.log(
                f"only {len(self.instructions)} instructions available; round {round_index} uses all of them"
            )
            n = len(self.instructions)
        drawn = draw_round(self.instructions, n, round_index, self.config.run.seed)
        tournament = self.config.tournament
        matches = make_matches(
            drawn,
            state.reputation.ratings,
            tournament.alpha,
            tournament.k,
            derive_rng(state.seed, round_index, "matches"),
        )
        write_jsonl(path, [m.to_dict() for m in matches])
        self._finish(state, round_index, "matches")
        return matches

    def _long_stage(
        self,
        state: RunState,
        round_index: int,
        stage: str,
        label: str,
        requests: Sequence[T],
        run_chunks: Callable[[Sequence[Chunk[T]], Callable[[int], None]], Iterator[list[Any]]],
        batch: int,
    ) -> list[dict[str, Any]]:
        """A stage whose work is a long list of requests: checkpointed chunk by chunk, resumable mid-way."""
        path = round_dir(self.out, round_index) / f"{stage}.jsonl"
        if state.done(round_index, stage):
            return read_jsonl(path)
        with self.reporter.stage(f"round {round_index}: {label}", len(requests)) as advance:

            def work(chunks: Sequence[Chunk[T]]) -> Iterator[list[dict[str, Any]]]:
                return ([x.to_dict() for x in done] for done in run_chunks(chunks, advance))

            size = _chunk_size(len(requests), batch)
            rows = run_chunked(path, requests, work, size, advance, parallel_chunks(self.tribe))
        self._finish(state, round_index, stage)
        return rows

    def _stage_responses(
        self, state: RunState, round_index: int, matches: Sequence[Match]
    ) -> dict[tuple[str, str], Response]:
        requests = [(m.model_a, m.instruction) for m in matches] + [(m.model_b, m.instruction) for m in matches]
        requests = list({(member, inst.id): (member, inst) for member, inst in requests}.values())

        seed = derive_seed(state.seed, round_index, "responses")  # each answer's own seed adds member and instruction

        def answer(
            chunks: Sequence[Chunk[tuple[str, Instruction]]], advance: Callable[[int], None]
        ) -> Iterator[list[Response]]:
            return generate_chunks(self.tribe, [(chunk, seed) for chunk, _ in chunks], advance)

        rows = self._long_stage(
            state, round_index, "responses", "answering", requests, answer, self.config.pool.generation_batch_size
        )
        responses = [Response.from_dict(d) for d in rows]
        return {(x.instruction_id, x.model): x for x in responses}

    def _stage_judgments(
        self, state: RunState, round_index: int, matches: Sequence[Match], responses: dict[tuple[str, str], Response]
    ) -> list[Judgment]:
        requests = [
            JudgeRequest(judge, match.instruction, responses[(match.instruction.id, side)])
            for match in _answered(matches, responses)
            for judge in judges_for(match, self.members, self.config.tournament.judges)
            for side in (match.model_a, match.model_b)
        ]

        def judge(chunks: Sequence[Chunk[JudgeRequest]], advance: Callable[[int], None]) -> Iterator[list[Judgment]]:
            return judge_chunks(self.tribe, [chunk for chunk, _ in chunks], advance)

        rows = self._long_stage(
            state, round_index, "judgments", "judging", requests, judge, self.config.judge.batch_size
        )
        return [Judgment.from_dict(d) for d in rows]

    def _stage_ratings(
        self,
        state: RunState,
        round_index: int,
        round_path: Path,
        matches: Sequence[Match],
        responses: dict[tuple[str, str], Response],
        judgments: Sequence[Judgment],
    ) -> tuple[list[MatchOutcome], PairSelection]:
        if state.done(round_index, "ratings"):
            outcomes = [MatchOutcome.from_dict(d) for d in read_jsonl(round_path / OUTCOMES)]
            pairs = [PreferencePair.from_dict(d) for d in read_jsonl(round_path / PAIRS)]
            counts = read_json(round_path / RATINGS).get("pair_selection", {})
            return outcomes, PairSelection(
                pairs,
                dropped_truncated=counts.get("dropped_truncated", 0),
                kept_truncated=counts.get("kept_truncated", 0),
            )
        reputation = state.reputation.copy()
        if self.config.tournament.reset_kappa_each_round:
            reputation.updates = 0
        table = score_table(judgments)
        outcomes = rate_matches(reputation, matches, table, self.config.tournament)
        selection = select_pairs(matches, responses, table, reputation.ratings, self.config.tournament)
        write_jsonl(round_path / OUTCOMES, [o.to_dict() for o in outcomes])
        write_jsonl(round_path / PAIRS, [p.to_dict() for p in selection.pairs])
        write_json(
            round_path / RATINGS,
            {
                "round": round_index,
                "ratings": reputation.ratings,
                "sigmas": reputation.sigmas,
                "updates": reputation.updates,
                "pair_selection": {
                    "dropped_truncated": selection.dropped_truncated,
                    "kept_truncated": selection.kept_truncated,
                },
            },
        )
        state.reputation = reputation
        self._finish(state, round_index, "ratings")
        return outcomes, selection

    def _stage_training(
        self,
        state: RunState,
        round_index: int,
        round_path: Path,
        selection: PairSelection,
        responses: dict[tuple[str, str], Response],
    ) -> dict[str, Any]:
        path = round_path / TRAINING
        if state.done(round_index, "training"):
            return read_json(path)
        if not self.config.training.enabled:
            metrics: dict[str, Any] = {"skipped": True, "reason": "training.enabled is false"}
        else:
            steps = len(self.members)
            seed = derive_seed(state.seed, round_index, "training")
            with self.reporter.stage(f"round {round_index}: training", steps) as advance:
                metrics = self.tribe.train(selection.pairs, round_path, seed, advance)
        metrics |= {
            "truncated_responses": sum(x.truncated for x in responses.values()),
            "pairs_dropped_truncated": selection.dropped_truncated,
            "pairs_kept_truncated": selection.kept_truncated,
        }
        write_json(path, metrics)
        partial_path(path).unlink(missing_ok=True)  # members a parallel tribe finished before a crash
        self._finish(state, round_index, "training")
        return metrics


def _answered(matches: Sequence[Match], responses: dict[tuple[str, str], Response]) -> list[Match]:
    """The matches whose two answers both exist (a skipped prompt has no answer to judge)."""
    return [
        match
        for match in matches
        if not any(
            responses[(match.instruction.id, side)].meta.get("skipped") for side in (match.model_a, match.model_b)
        )
    ]


def _training_skipped(round_path: Path) -> bool:
    return bool(read_json(round_path / TRAINING).get("skipped"))


def check_same_config(config: SpartaConfig, out_dir: Path) -> None:
    """A run directory belongs to one configuration; only ``run.rounds`` (to extend it), ``tracking`` (what is logged)
    and where the tribe and the servers run (``backend.placement``, ``ray``, ``vllm``) may change."""
    path = Path(out_dir) / CONFIG_YAML
    if not path.exists():
        return
    old = load_config(path).model_dump(mode="json")
    new = config.model_dump(mode="json")
    # how many rounds, what is logged, and where the tribe and the servers run never change what a round computes
    for dump in (old, new):
        dump["run"].pop("rounds"), dump["backend"].pop("placement"), dump.pop("ray")
        dump.pop("tracking", None), dump.pop("vllm", None)
    changed = sorted(
        f"{section}.{key}"
        for section in new
        for key in set(new[section]) | set(old.get(section, {}))
        if new[section].get(key) != old.get(section, {}).get(key)
    )
    if changed:
        raise RunDirectoryError(
            f"{out_dir} holds a run with another configuration (differs in {', '.join(changed)}); "
            "resume it with its own config.yaml or choose a new --out "
            "(only run.rounds, tracking, backend.placement and the ray and vllm sections may change)"
        )


def check_before_loading(config: SpartaConfig, out_dir: Path) -> list[Instruction]:
    """What can fail without a model, checked before any model loads: the pool's size, the run directory,
    the task's instructions. Returns the instructions combat draws from."""
    members = config.member_names()
    if len(members) < 2:
        raise ConfigError(f"pool.members: a SPARTA run needs at least 2 members, got {len(members)}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RunDirectoryError(f"--out {out} is a file, not a run directory")
    check_same_config(config, out)
    return combat_instructions(config)


def run(
    config: SpartaConfig, out_dir: Path, reporter: Reporter | None = None, tribe: Tribe | None = None
) -> tuple[RoundLoop, list[RoundStats]]:
    """Run or resume the configured run in ``out_dir``, logging it to the configured trackers; a tribe built here
    is closed at the end."""
    instructions = check_before_loading(config, out_dir)
    observer = build_observer(config, out_dir)  # before the tribe loads: a missing tracker library fails at once
    if tribe is not None:
        loop = RoundLoop(config, out_dir, tribe, reporter, observer, instructions)
        return loop, loop.run()
    built = build_tribe(config)
    try:
        loop = RoundLoop(config, out_dir, built, reporter, observer, instructions)
        return loop, loop.run()
    finally:
        close_tribe(built)
