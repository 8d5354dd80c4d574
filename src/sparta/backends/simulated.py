"""A synthetic tribe: members with latent skills per domain, noisy judges, and training that pulls toward winners.

It plays the :class:`~sparta.backends.base.Tribe` contract without any model, so the tournament, the pipeline and
ablations (aggregation, match-making, pool size, judge noise) run at paper scale in seconds, and every result can be
compared with the ground truth (the latent skills) that a real tribe never reveals.

The model, with ``sigmoid(x) = 1 / (1 + exp(-x))``:

- member i has a skill ``skill[i][d]`` in each domain d, drawn from N(skill_mean, skill_spread) seeded by the run
  seed and the member's name (so adding a member does not change the others);
- its answer to instruction x of domain d has quality ``q = skill[i][d] + response_noise * z`` where z ~ N(0, 1)
  comes from a stable hash of (run seed, member, instruction id), never from call order: the same quality is
  re-derived when the pair is trained on, and after a resume;
- judge j scores a response ``1 + 9 * sigmoid(q + e)``, e ~ N(0, sd_j), with
  ``sd_j = judge_noise * exp(-judge_noise_skill_slope * skill[j][d])``: stronger judges are less noisy;
  with probability ``judge_failure_rate`` the judgment is unreadable (score None);
- training on a round's pairs moves every member i in domain d by
  ``learning_rate * mean over the pairs of d of (q_chosen - q_rejected) * sigmoid(q_chosen - skill[i][d])``:
  correctly labelled pairs help, mislabelled ones (q_chosen < q_rejected) hurt.

An instruction whose domain is not one of ``simulation.domains`` is mapped to one of them by a hash of its name.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparta.backends.base import Progress, _no_progress
from sparta.config import ConfigError
from sparta.records import Instruction, JudgeRequest, Judgment, PreferencePair, Response
from sparta.rundir import RunFileDamagedError, RunFileMissingError, read_json, write_json

if TYPE_CHECKING:
    from sparta.config import SimulationConfig, SpartaConfig

STATE_FILE = "tribe_state.json"
STATE_FORMAT = 1
FAILURE_REASON = "unparseable (simulated)"
FAILURE_RAW = "???"
_PROGRESS_CHUNK = 1000
_TWO_PI = 2.0 * math.pi
_U64 = float(2**64)
_SEP = "\x1f"


def _digest(*parts: object, size: int = 16) -> bytes:
    """A stable hash of the parts (unlike ``hash()``, identical across processes and platforms)."""
    return hashlib.blake2b(_SEP.join(map(str, parts)).encode("utf-8"), digest_size=size).digest()


def _normal_and_uniform(*parts: object) -> tuple[float, float]:
    """A standard normal (Box-Muller on two hashed uniforms) and an independent uniform in [0, 1)."""
    a, b, c = struct.unpack("<3Q", _digest(*parts, size=24))
    u1 = (a + 1) / _U64  # in (0, 1]: log(u1) is finite
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(_TWO_PI * b / _U64), c / _U64


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _check_domains(domains: list[str]) -> None:
    if not domains:
        raise ConfigError("simulation.domains is empty: the simulated tribe needs at least one domain")
    dupes = sorted({d for d in domains if domains.count(d) > 1})
    if dupes:
        raise ConfigError(f"simulation.domains: duplicate domains {dupes}")


def initial_skills(
    members: Sequence[str], domains: Sequence[str], sim: SimulationConfig, seed: int
) -> dict[str, list[float]]:
    """Each member's skills, one per domain, drawn from N(skill_mean, skill_spread) seeded by (seed, member)."""
    skills = {}
    for m in members:
        row = []
        for d in domains:
            z, _ = _normal_and_uniform("skill", seed, m, d)
            row.append(sim.skill_mean + sim.skill_spread * z)
        skills[m] = row
    return skills


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
        self._domain_index: dict[str, int] = {d: i for i, d in enumerate(self.domains)}
        self._skills = initial_skills(self.members, self.domains, sim, seed)

    # ----------------------------------------------------------------- latent facts
    def domain_of(self, domain: str) -> str:
        """The simulated domain an instruction's domain stands for (itself, or one picked by a stable hash)."""
        return self.domains[self._domain_idx(domain)]

    def _domain_idx(self, domain: str) -> int:
        idx = self._domain_index.get(domain)
        if idx is None:
            idx = int.from_bytes(_digest("domain", domain, size=8), "little") % len(self.domains)
            self._domain_index[domain] = idx
        return idx

    def _skill_row(self, member: str, what: str) -> list[float]:
        try:
            return self._skills[member]
        except KeyError:
            raise KeyError(f"{what} {member!r} is not a member of the simulated tribe {self.members}") from None

    def _quality(self, member: str, instruction_id: str, domain_idx: int) -> float:
        z, _ = _normal_and_uniform("response", self.seed, member, instruction_id)
        return self._skill_row(member, "model")[domain_idx] + self.sim.response_noise * z

    def latent_quality(self, member: str, instruction: Instruction) -> float:
        """The true quality of ``member``'s answer to ``instruction`` under the current skills."""
        return self._quality(member, instruction.id, self._domain_idx(instruction.domain))

    def mean_skill(self, member: str) -> float:
        row = self._skill_row(member, "member")
        return sum(row) / len(row)

    def skills(self) -> dict[str, dict[str, float]]:
        """A copy of the current skills: member -> domain -> skill."""
        return {m: dict(zip(self.domains, row)) for m, row in self._skills.items()}

    def judge_noise_sd(self, judge: str, domain: str) -> float:
        """The standard deviation of ``judge``'s error on responses of ``domain``."""
        skill = self._skill_row(judge, "judge")[self._domain_idx(domain)]
        return self.sim.judge_noise * math.exp(-self.sim.judge_noise_skill_slope * skill)

    # ----------------------------------------------------------------- Tribe contract
    def generate(
        self, requests: Sequence[tuple[str, Instruction]], seed: int, progress: Progress = _no_progress
    ) -> list[Response]:
        """Answer each request. ``seed`` is not used: a quality depends on (run seed, member, instruction id) only,
        so that training and a resumed run re-derive it."""
        out = []
        for n, (member, ins) in enumerate(requests, 1):
            d = self._domain_idx(ins.domain)
            q = self._quality(member, ins.id, d)
            meta = {"quality": q, "domain": self.domains[d]}
            text = f"[{member} on {ins.id}: simulated answer]"
            out.append(Response(instruction_id=ins.id, model=member, text=text, meta=meta))
            if n % _PROGRESS_CHUNK == 0:
                progress(_PROGRESS_CHUNK)
        progress(len(out) % _PROGRESS_CHUNK)
        return out

    def judge(self, requests: Sequence[JudgeRequest], progress: Progress = _no_progress) -> list[Judgment]:
        """Score each response; the response's recorded quality is used when present, else it is re-derived."""
        out = []
        for n, req in enumerate(requests, 1):
            out.append(self._judge_one(req))
            if n % _PROGRESS_CHUNK == 0:
                progress(_PROGRESS_CHUNK)
        progress(len(out) % _PROGRESS_CHUNK)
        return out

    def _judge_one(self, req: JudgeRequest) -> Judgment:
        ins, resp = req.instruction, req.response
        d = self._domain_idx(ins.domain)
        q = resp.meta.get("quality")
        if q is None:
            q = self._quality(resp.model, ins.id, d)
        z, u = _normal_and_uniform("judge", self.seed, req.judge, resp.model, ins.id)
        if u < self.sim.judge_failure_rate:
            return Judgment(
                judge=req.judge,
                model=resp.model,
                instruction_id=ins.id,
                score=None,
                failure=FAILURE_REASON,
                raw=FAILURE_RAW,
            )
        sd = self.sim.judge_noise * math.exp(-self.sim.judge_noise_skill_slope * self._skill_row(req.judge, "judge")[d])
        score = 1.0 + 9.0 * _sigmoid(q + sd * z)
        return Judgment(judge=req.judge, model=resp.model, instruction_id=ins.id, score=score)

    def train(
        self, pairs: Sequence[PreferencePair], round_dir: Path, seed: int, progress: Progress = _no_progress
    ) -> dict[str, Any]:
        """Move every member toward the round's winners, save the state to ``round_dir/tribe_state.json``.

        Deterministic: ``seed`` is not used. The pairs' qualities are re-derived from the skills as they are now,
        which are those the responses were generated with (nothing changes skills between generation and training).
        """
        gaps: dict[int, list[tuple[float, float]]] = defaultdict(list)  # domain -> (q_chosen - q_rejected, q_chosen)
        mislabelled = 0
        for i, p in enumerate(pairs):
            d = self._domain_idx(p.domain)
            try:
                qc = self._quality(p.chosen_model, p.instruction_id, d)
                qr = self._quality(p.rejected_model, p.instruction_id, d)
            except KeyError as err:
                raise ValueError(f"preference pair {i} (instruction {p.instruction_id!r}): {err.args[0]}") from None
            gaps[d].append((qc - qr, qc))
            mislabelled += qc < qr
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


def build(config: SpartaConfig) -> SimulatedTribe:
    """The factory registered as the ``simulated`` backend."""
    return SimulatedTribe(config.member_names(), config.simulation, config.run.seed)
