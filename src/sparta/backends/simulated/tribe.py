"""A synthetic tribe: members with latent skills per domain, judges of known reliability, training toward winners.

It plays the :class:`~sparta.backends.base.Tribe` contract without any model, so the tournament, the pipeline and
ablations (aggregation, match-making, pool size, unreliable judges) run at paper scale in seconds, and every result
can be compared with the ground truth (latent skills and qualities) that a real tribe never reveals.

The model, with ``sigmoid(x) = 1 / (1 + exp(-x))`` and every random draw a stable hash of names (``draws``):

- member i has a skill ``skill[i][d]`` in each domain d, drawn from N(skill_mean, skill_spread) seeded by the run
  seed and the member's name (so adding a member does not change the others);
- its answer to instruction x of domain d has quality ``q = skill[i][d] + response_noise * z`` where z ~ N(0, 1)
  is keyed by (run seed, member, instruction id), never by call order: the same quality is re-derived when the pair
  is trained on, and after a resume;
- judge j's error on a response of domain d is ``e = sd_j * z`` (z keyed by run seed, judge, author, instruction)
  with ``sd_j = judge_noise * exp(-judge_noise_skill_slope * a[j][d])``, where the judging ability ``a`` is
  ``judge_noise_model``: ``skill`` (the default) the judge's current skill, so stronger members judge better and
  improve as they learn; ``independent`` a fixed ability drawn like the initial skills but independently of them,
  so reliability is unequal and unrelated to answering skill;
- the judge scores ``1 + 9 * sigmoid(perceived)``, with ``perceived = q + e`` for an honest judge; a configured share
  of noisy, inverted, biased or colluding judges perceive something else (``judges``, where the kinds are defined);
  with probability ``judge_failure_rate`` the judgment is unreadable (score None);
- training on a round's pairs moves every member i in domain d by
  ``learning_rate * mean over the pairs of d of (q_chosen - q_rejected) * sigmoid(q_chosen - skill[i][d])``:
  correctly labelled pairs help, mislabelled ones (q_chosen < q_rejected) hurt.

An instruction whose domain is not one of ``simulation.domains`` is mapped to one of them by a hash of its name.
Answering and judging are computed for a whole batch at once in numpy; training stays a plain loop.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sparta.backends.base import Progress, _no_progress
from sparta.backends.simulated import draws
from sparta.backends.simulated.judges import HONEST, JUDGE_KINDS, NEEDS_STYLE, Perception, assign_kinds, pick_ally
from sparta.config import ConfigError
from sparta.records import Instruction, JudgeRequest, Judgment, PreferencePair, Response
from sparta.rundir import RunFileDamagedError, RunFileMissingError, read_json, write_json

if TYPE_CHECKING:
    from sparta.config import SimulationConfig, SpartaConfig

STATE_FILE = "tribe_state.json"
STATE_FORMAT = 1
FAILURE_REASON = "unparseable (simulated)"
FAILURE_RAW = "???"


def _check_domains(domains: list[str]) -> None:
    if not domains:
        raise ConfigError("simulation.domains is empty: the simulated tribe needs at least one domain")
    dupes = sorted({d for d in domains if domains.count(d) > 1})
    if dupes:
        raise ConfigError(f"simulation.domains: duplicate domains {dupes}")


def latent_matrix(
    members: Sequence[str], domains: Sequence[str], sim: SimulationConfig, seed: int, what: str
) -> np.ndarray:
    """(members, domains) draws from N(skill_mean, skill_spread) keyed by (what, seed, member, domain)."""
    normals, _ = draws.normals_and_uniforms((what, seed), [(m, d) for m in members for d in domains])
    return sim.skill_mean + sim.skill_spread * normals.reshape(len(members), len(domains))


def initial_skills(
    members: Sequence[str], domains: Sequence[str], sim: SimulationConfig, seed: int
) -> dict[str, list[float]]:
    """Each member's skills, one per domain, drawn from N(skill_mean, skill_spread) seeded by (seed, member)."""
    matrix = latent_matrix(members, domains, sim, seed, "skill")
    return {member: matrix[i].tolist() for i, member in enumerate(members)}


class SimulatedTribe:
    """The synthetic tribe; see the module docstring for the model it follows."""

    def __init__(self, members: Sequence[str], sim: SimulationConfig, seed: int) -> None:
        if not members:
            raise ConfigError("pool.members is empty: the simulated tribe needs at least one member")
        _check_domains(list(sim.domains))
        self.members: list[str] = list(members)
        self.domains: list[str] = list(sim.domains)
        self.sim = sim
        self.seed = seed
        self._member_index = {m: i for i, m in enumerate(self.members)}
        self._domain_index: dict[str, int] = {d: i for i, d in enumerate(self.domains)}
        self._skills = initial_skills(self.members, self.domains, sim, seed)
        self._ability = (
            latent_matrix(self.members, self.domains, sim, seed, "judge ability")
            if sim.judge_noise_model == "independent"
            else None
        )
        self.judge_kinds: dict[str, str] = assign_kinds(self.members, sim.unreliable_judges, seed)
        self.ally: str | None = pick_ally(self.members, self.judge_kinds, seed)

    # ----------------------------------------------------------------- latent facts
    def domain_of(self, domain: str) -> str:
        """The simulated domain an instruction's domain stands for (itself, or one picked by a stable hash)."""
        return self.domains[self._domain_idx(domain)]

    def _domain_idx(self, domain: str) -> int:
        idx = self._domain_index.get(domain)
        if idx is None:
            idx = int.from_bytes(draws.digest("domain", domain, size=8), "little") % len(self.domains)
            self._domain_index[domain] = idx
        return idx

    def _index(self, member: str, what: str) -> int:
        try:
            return self._member_index[member]
        except KeyError:
            raise KeyError(f"{what} {member!r} is not a member of the simulated tribe {self.members}") from None

    def _skill_matrix(self) -> np.ndarray:
        return np.array([self._skills[m] for m in self.members], dtype=np.float64)

    def _qualities(self, authors: Sequence[str], instruction_ids: Sequence[str], domains: np.ndarray) -> np.ndarray:
        """Latent qualities of many answers under the current skills."""
        rows = np.array([self._index(a, "model") for a in authors], dtype=np.int64)
        noise, _ = draws.normals_and_uniforms(("response", self.seed), zip(authors, instruction_ids))
        return self._skill_matrix()[rows, domains] + self.sim.response_noise * noise

    def latent_quality(self, member: str, instruction: Instruction) -> float:
        """The true quality of ``member``'s answer to ``instruction`` under the current skills."""
        domain = np.array([self._domain_idx(instruction.domain)])
        return float(self._qualities([member], [instruction.id], domain)[0])

    def mean_skill(self, member: str) -> float:
        row = self._skills[self.members[self._index(member, "member")]]
        return sum(row) / len(row)

    def skills(self) -> dict[str, dict[str, float]]:
        """A copy of the current skills: member -> domain -> skill."""
        return {m: dict(zip(self.domains, row)) for m, row in self._skills.items()}

    def _noise_sd_matrix(self) -> np.ndarray:
        """(judges, domains) sd of an honest judge's error; a noisy judge multiplies it."""
        ability = self._skill_matrix() if self._ability is None else self._ability
        return self.sim.judge_noise * np.exp(-self.sim.judge_noise_skill_slope * ability)

    def judge_noise_sd(self, judge: str, domain: str) -> float:
        """The standard deviation of ``judge``'s error on responses of ``domain`` (its kind's, for a noisy judge)."""
        sd = float(self._noise_sd_matrix()[self._index(judge, "judge"), self._domain_idx(domain)])
        return sd * self.sim.unreliable_noise_factor if self.judge_kinds[judge] == "noisy" else sd

    # ----------------------------------------------------------------- Tribe contract
    def generate(
        self, requests: Sequence[tuple[str, Instruction]], seed: int, progress: Progress = _no_progress
    ) -> list[Response]:
        """Answer each request. ``seed`` is not used: a quality depends on (run seed, member, instruction id) only,
        so that training and a resumed run re-derive it."""
        if not requests:
            return []
        domains = np.array([self._domain_idx(ins.domain) for _, ins in requests], dtype=np.int64)
        qualities = self._qualities([m for m, _ in requests], [ins.id for _, ins in requests], domains).tolist()
        out = [
            Response(
                instruction_id=ins.id,
                model=member,
                text=f"[{member} on {ins.id}: simulated answer]",
                meta={"quality": quality, "domain": self.domains[domain]},
            )
            for (member, ins), quality, domain in zip(requests, qualities, domains.tolist())
        ]
        progress(len(out))
        return out

    def judge(self, requests: Sequence[JudgeRequest], progress: Progress = _no_progress) -> list[Judgment]:
        """Score each response; the response's recorded quality is used when present, else it is re-derived."""
        if not requests:
            return []
        scores, failed = self._scores(requests)
        out = [
            Judgment(judge=r.judge, model=r.response.model, instruction_id=r.instruction.id, score=score)
            if not fail
            else Judgment(
                judge=r.judge,
                model=r.response.model,
                instruction_id=r.instruction.id,
                score=None,
                failure=FAILURE_REASON,
                raw=FAILURE_RAW,
            )
            for r, score, fail in zip(requests, scores.tolist(), failed.tolist())
        ]
        progress(len(out))
        return out

    def _scores(self, requests: Sequence[JudgeRequest]) -> tuple[np.ndarray, np.ndarray]:
        """Every request's score and whether it failed, computed for the batch at once."""
        judges = [r.judge for r in requests]
        authors = [r.response.model for r in requests]
        instruction_ids = [r.instruction.id for r in requests]
        judge_rows = np.array([self._index(j, "judge") for j in judges], dtype=np.int64)
        domains = np.array([self._domain_idx(r.instruction.domain) for r in requests], dtype=np.int64)
        quality = self._recorded_qualities(requests, domains)
        noise, uniform = draws.normals_and_uniforms(("judge", self.seed), zip(judges, authors, instruction_ids))
        seen = Perception(
            quality=quality,
            error=self._noise_sd_matrix()[judge_rows, domains] * noise,
            style=np.zeros_like(quality),
            for_ally=np.array([a == self.ally for a in authors], dtype=np.float64),
        )
        perceived = JUDGE_KINDS.get(HONEST)(seen, self.sim)
        for kind in sorted(set(self.judge_kinds.values()) - {HONEST}):
            rows = [self._member_index[m] for m, k in self.judge_kinds.items() if k == kind]
            mask = np.isin(judge_rows, rows)
            if kind in NEEDS_STYLE:
                seen.style[mask] = self._styles(authors, instruction_ids, mask)
            perceived[mask] = JUDGE_KINDS.get(kind)(seen, self.sim)[mask]
        return 1.0 + 9.0 * draws.sigmoid(perceived), uniform < self.sim.judge_failure_rate

    def _recorded_qualities(self, requests: Sequence[JudgeRequest], domains: np.ndarray) -> np.ndarray:
        recorded = [r.response.meta.get("quality") for r in requests]
        missing = [i for i, q in enumerate(recorded) if q is None]
        if missing:
            derived = self._qualities(
                [requests[i].response.model for i in missing],
                [requests[i].instruction.id for i in missing],
                domains[missing],
            )
            for i, quality in zip(missing, derived.tolist()):
                recorded[i] = quality
        return np.array(recorded, dtype=np.float64)

    def _styles(self, authors: Sequence[str], instruction_ids: Sequence[str], mask: np.ndarray) -> np.ndarray:
        keys = [(a, i) for a, i, use in zip(authors, instruction_ids, mask.tolist()) if use]
        normals, _ = draws.normals_and_uniforms(("style", self.seed), keys)
        return self.sim.style_spread * normals

    def train(
        self, pairs: Sequence[PreferencePair], round_dir: Path, seed: int, progress: Progress = _no_progress
    ) -> dict[str, Any]:
        """Move every member toward the round's winners, save the state to ``round_dir/tribe_state.json``.

        Deterministic: ``seed`` is not used. The pairs' qualities are re-derived from the skills as they are now,
        which are those the responses were generated with (nothing changes skills between generation and training).
        """
        gaps: dict[int, list[tuple[float, float]]] = defaultdict(list)  # domain -> (q_chosen - q_rejected, q_chosen)
        mislabelled = 0
        for pair, chosen, rejected in zip(pairs, *self._pair_qualities(pairs)):
            gaps[self._domain_idx(pair.domain)].append((chosen - rejected, chosen))
            mislabelled += chosen < rejected
        before = {m: list(row) for m, row in self._skills.items()}
        for d, items in gaps.items():
            for m, row in self._skills.items():
                s = before[m][d]
                row[d] = s + self.sim.learning_rate * sum(g * _sigmoid(qc - s) for g, qc in items) / len(items)
        progress(len(self.members))
        gains = [sum(self._skills[m]) / len(self.domains) - sum(before[m]) / len(self.domains) for m in self.members]
        metrics = {
            "pairs": len(pairs),
            "mean_skill_gain": sum(gains) / len(gains),
            "mislabelled_share": mislabelled / len(pairs) if pairs else 0.0,
        }
        write_json(Path(round_dir) / STATE_FILE, self._state(metrics))
        return metrics

    def _pair_qualities(self, pairs: Sequence[PreferencePair]) -> tuple[list[float], list[float]]:
        """(chosen, rejected) latent qualities of every pair; a pair naming a stranger is an error saying which."""
        for i, pair in enumerate(pairs):
            for model in (pair.chosen_model, pair.rejected_model):
                if model not in self._member_index:
                    raise ValueError(
                        f"preference pair {i} (instruction {pair.instruction_id!r}): model {model!r} is not a member "
                        f"of the simulated tribe {self.members}"
                    )
        if not pairs:
            return [], []
        domains = np.array([self._domain_idx(p.domain) for p in pairs], dtype=np.int64)
        ids = [p.instruction_id for p in pairs]
        chosen = self._qualities([p.chosen_model for p in pairs], ids, domains)
        rejected = self._qualities([p.rejected_model for p in pairs], ids, domains)
        return chosen.tolist(), rejected.tolist()

    def load_round(self, round_dir: Path) -> None:
        """Restore the skills saved by :meth:`train` in ``round_dir``."""
        path = Path(round_dir) / STATE_FILE
        if not path.is_file():
            raise RunFileMissingError(f"{path}: no simulated tribe state (was the round trained?)")
        state = read_json(path)
        if state.get("format") != STATE_FORMAT:
            raise RunFileDamagedError(f"{path}: field 'format' is {state.get('format')!r}, expected {STATE_FORMAT}")
        if state.get("domains") != self.domains:
            raise RunFileDamagedError(
                f"{path}: field 'domains' is {state.get('domains')!r}, the configuration has {self.domains}"
            )
        skills = state.get("skills") or {}
        missing = [m for m in self.members if m not in skills]
        if missing:
            raise RunFileDamagedError(f"{path}: field 'skills' lacks members {missing}")
        self._skills = {m: [float(skills[m][d]) for d in self.domains] for m in self.members}

    def _state(self, metrics: dict[str, Any]) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "seed": self.seed,
            "domains": self.domains,
            "members": self.members,
            "skills": self.skills(),
            "metrics": metrics,
        }


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def build(config: SpartaConfig) -> SimulatedTribe:
    """The factory registered as the ``simulated`` backend."""
    return SimulatedTribe(config.member_names(), config.simulation, config.run.seed)
