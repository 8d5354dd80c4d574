"""Every knob of a SPARTA run: pydantic models, YAML loading and dotted command-line overrides.

Defaults are those of the SPARTA authors' code (DESIGN section 1) unless a comment says otherwise.
Invalid values fail with a message that names the field and the allowed range.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sparta.errors import SpartaError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _registered(registry: Any, name: str) -> str:
    """``name`` if ``registry`` has it; pydantic reports a ValueError with the near names and the known ones."""
    from sparta.registry import UnknownNameError

    try:
        return registry.check(name)
    except UnknownNameError as err:
        raise ValueError(str(err)) from None


class TournamentConfig(_Strict):
    """Match-making, aggregation and the reputation update."""

    initial_rating: float = Field(100.0, gt=0, description="R0, every member's starting reputation")
    initial_sigma: float = Field(0.5, gt=0, description="sigma0, deviation until two rating changes exist")
    kappa0: float = Field(10.0, gt=0, description="initial step size")
    kappa_min: float = Field(5.0, ge=0, description="floor of the decayed step size")
    decay: float = Field(0.9, gt=0, le=1, description="kappa = kappa0 * decay ** (updates / decay_steps)")
    decay_steps: int = Field(10, ge=1)
    eps: float = Field(0.01, ge=0, le=1, description="floor of |Phi(z) - Phi(-z)|")
    window: int = Field(10, ge=2, description="rating changes kept for sigma")
    sigma_min: float = Field(0.1, gt=0, description="floor of sigma")
    scale: float = Field(20.0, gt=0, description="divides every rating change")
    rating_floor: float = Field(10.0, ge=0, description="ratings never drop below this")
    alpha: float = Field(0.6, ge=0, le=1, description="probability of a uniformly random opponent")
    k: int = Field(5, ge=1, description="closest-rated candidates for the other opponents")
    min_margin: float = Field(0.0, ge=0, description="pairs whose score margin is below this (and ties) are dropped")
    aggregation: str = Field(
        "reputation", description="a registered aggregation of the judges' scores: reputation (paper), uniform"
    )
    update_rule: str = Field("paper", description="a registered reputation update rule: paper, upset_aware")
    reset_kappa_each_round: bool = Field(False, description="reproduce the authors' per-round kappa reset")
    judges: Literal["others", "all"] = Field(
        "others",
        description="who judges a match: the members not fighting (paper) or every member, combatants included",
    )

    @field_validator("aggregation")
    @classmethod
    def _known_aggregation(cls, name: str) -> str:
        from sparta.tournament.aggregation import AGGREGATORS

        return _registered(AGGREGATORS, name)

    @field_validator("update_rule")
    @classmethod
    def _known_update_rule(cls, name: str) -> str:
        from sparta.tournament.reputation import GAINS

        return _registered(GAINS, name)

    @model_validator(mode="after")
    def _kappa_order(self) -> TournamentConfig:
        if self.kappa_min > self.kappa0:
            raise ValueError(
                f"tournament.kappa_min ({self.kappa_min}) must not exceed tournament.kappa0 ({self.kappa0})"
            )
        return self


class SamplingConfig(_Strict):
    temperature: float = Field(0.7, ge=0, le=5)
    top_p: float = Field(0.9, gt=0, le=1)
    max_new_tokens: int = Field(128, ge=1, le=32768)


class LoraConfig(_Strict):
    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


class MemberConfig(_Strict):
    """One pool member: a base model (hub id, local path or alias), optionally a LoRA adapter on it."""

    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    model: str = Field(..., min_length=1)
    clone_of: str | None = Field(
        None,
        description="start as an exact copy of that member (model, adapter, prompt, sampling, LoRA initialisation); "
        "clones sample independently but judge and train identically, so they stay one model: Self-Rewarding",
    )
    adapter: str | None = None
    system_prompt: str | None = None
    sampling: SamplingConfig | None = None


class PoolConfig(_Strict):
    members: list[MemberConfig] = Field(default_factory=list)
    sampling: SamplingConfig = Field(
        default_factory=SamplingConfig, description="default for members without their own"
    )
    trust_remote_code: bool = False
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    device: str = "cpu"
    max_prompt_tokens: int = Field(1024, ge=8)
    long_prompt: Literal["error", "skip"] = Field(
        "error", description="what to do with a prompt over max_prompt_tokens"
    )
    generation_batch_size: int = Field(8, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _fill_clones(cls, data: Any) -> Any:
        """A clone inherits every field it does not set from the member it copies."""
        if not isinstance(data, dict) or not isinstance(data.get("members"), list):
            return data
        by_name = {m.get("name"): m for m in data["members"] if isinstance(m, dict)}
        filled = []
        for i, m in enumerate(data["members"]):
            if isinstance(m, dict) and m.get("clone_of") is not None:
                original = by_name.get(m["clone_of"])
                if original is None or original.get("clone_of") is not None or original is m:
                    raise ValueError(
                        f"pool.members.{i}.clone_of: {m['clone_of']!r} is not another member that is itself no clone"
                    )
                m = {**{k: v for k, v in original.items() if k != "name"}, **m}
            filled.append(m)
        return {**data, "members": filled}

    @model_validator(mode="after")
    def _unique_names(self) -> PoolConfig:
        names = [m.name for m in self.members]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"pool.members: duplicate member names {dupes}")
        return self


class JudgeConfig(_Strict):
    type: str = Field("generate", description="a registered judge type: generate, logprob, likelihood")
    batch_size: int = Field(8, ge=1)
    max_new_tokens: int = Field(32, ge=1)
    max_response_tokens: int = Field(512, ge=1, description="responses are cut to this many judge tokens")
    likelihood_repeat_ngram: int = Field(
        4,
        ge=0,
        le=64,
        description="likelihood judge: leave out tokens of repeated n-grams of this size and scale by the kept share "
        "(0: off)",
    )
    likelihood_min_tokens: int = Field(
        0, ge=0, description="likelihood judge: scale the probability by min(1, tokens / this) (0: off)"
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, name: str) -> str:
        from sparta.backends.base import JUDGES

        return _registered(JUDGES, name)


class TrainingConfig(_Strict):
    """DPO with LoRA; the paper uses lr 1e-6 at 7B scale, small CPU models need a larger step."""

    beta: float = Field(0.1, gt=0)
    learning_rate: float = Field(1e-6, gt=0, lt=1)
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(4, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_length: int = Field(512, ge=16)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    report_to: list[str] = Field(default_factory=list)
    enabled: bool = True


class SimulationConfig(_Strict):
    """The synthetic tribe: latent skills per domain, noisy judges, training that pulls toward winners."""

    domains: list[str] = Field(default_factory=lambda: ["math", "code", "knowledge", "reasoning", "writing"])
    skill_mean: float = 0.0
    skill_spread: float = Field(1.0, ge=0)
    response_noise: float = Field(1.0, ge=0, description="sd of a response's quality around its author's skill")
    judge_noise: float = Field(1.5, ge=0, description="judge noise sd for a judge of skill 0")
    judge_noise_skill_slope: float = Field(0.5, ge=0, description="how fast noise shrinks as judge skill grows")
    judge_failure_rate: float = Field(0.02, ge=0, le=1)
    learning_rate: float = Field(0.05, ge=0, description="skill gained per unit of (winner - self) per pair share")


class DataConfig(_Strict):
    """Where instructions come from; a registered task by name with its options."""

    task: str = "procedural"
    options: dict[str, Any] = Field(default_factory=dict)
    holdout_fraction: float = Field(0.2, ge=0, lt=1, description="kept away from combat for evaluation")

    @field_validator("task")
    @classmethod
    def _known_task(cls, name: str) -> str:
        from sparta.tasks import TASKS

        return _registered(TASKS, name)


class BackendConfig(_Strict):
    kind: str = Field("hf", description="a registered tribe backend: hf, simulated")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, name: str) -> str:
        from sparta.backends.base import TRIBES

        return _registered(TRIBES, name)


class RunConfig(_Strict):
    name: str = "sparta"
    seed: int = 0
    rounds: int = Field(8, ge=1)
    instructions_per_round: int = Field(1000, ge=1)


class SpartaConfig(_Strict):
    run: RunConfig = Field(default_factory=RunConfig)
    backend: BackendConfig = Field(default_factory=BackendConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    tournament: TournamentConfig = Field(default_factory=TournamentConfig)
    pool: PoolConfig = Field(default_factory=PoolConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    simulation: SimulationConfig = Field(default_factory=SimulationConfig)

    @model_validator(mode="after")
    def _enough_judges(self) -> SpartaConfig:
        n = len(self.pool.members)
        if n == 2 and self.tournament.judges == "others":
            raise ValueError("pool.members: with 2 members no one is left to judge a match; set tournament.judges=all")
        return self

    def member_names(self) -> list[str]:
        return [m.name for m in self.pool.members]


class ConfigError(SpartaError, ValueError):
    """A configuration problem, worded for the person who wrote the file."""


def format_validation_error(err: ValidationError, source: str, what: str = "configuration") -> str:
    """One line per faulty field: its dotted name, the problem, the allowed range and the value given."""
    lines = [f"invalid {what} in {source}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        ctx = e.get("ctx") or {}
        if ctx:
            bounds = ", ".join(f"{k} {v}" for k, v in ctx.items() if k in {"gt", "ge", "lt", "le"})
            if bounds:
                msg = f"{msg} (allowed: {bounds})"
        got = e.get("input")
        lines.append(f"  {loc}: {msg}; got {got!r}" if not isinstance(got, dict) else f"  {loc}: {msg}")
    return "\n".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=VALUE`` -> (["a","b","c"], VALUE parsed as YAML so numbers, booleans and lists keep their type."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form section.field=value")
    return key.strip().split("."), yaml.safe_load(raw) if raw.strip() else ""


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return data


def config_from_dict(
    data: dict[str, Any], source: str = "configuration", overrides: list[str] | None = None
) -> SpartaConfig:
    data = apply_overrides(dict(data or {}), list(overrides or []))
    try:
        return SpartaConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Sections merge key by key; an ``options`` mapping is replaced whole, because it belongs to its task."""
    merged = dict(base)
    for key, value in top.items():
        nested = isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "options"
        merged[key] = _deep_merge(merged[key], value) if nested else value
    return merged


def read_yaml(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A configuration file as a dict; ``extends: OTHER.yaml`` (relative to the file) is read first and overlaid
    (sections merge key by key, lists and ``options`` mappings are replaced)."""
    if not path.is_file():
        raise ConfigError(f"configuration file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(err, 'problem', err)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    parent = data.pop("extends", None)
    if parent is None:
        return data
    parent_path = (path.parent / str(parent)).resolve()
    if parent_path in _seen:
        raise ConfigError(f"{path}: extends {parent} forms a cycle")
    return _deep_merge(read_yaml(parent_path, (*_seen, path.resolve())), data)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> SpartaConfig:
    """Read a YAML file (or the defaults when ``path`` is None) and apply ``section.field=value`` overrides."""
    if path is None:
        return config_from_dict({}, "defaults", overrides)
    return config_from_dict(read_yaml(Path(path)), str(path), overrides)


def dump_config(config: SpartaConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
