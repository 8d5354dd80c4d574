"""The ``sparta init-pool`` configuration: its own YAML schema, separate from a run's SpartaConfig.

An init-pool file names one base model, the members to make of it (each with its own SFT subset), the SFT
settings shared by all of them, how diversity is measured afterwards, and under ``sparta:`` the sections of the
run configuration that init-pool writes out (``run``, ``data``, ``judge``, ``training``, ``pool`` minus its
members...). ``pool.members`` of that run configuration is filled in by init-pool: the base model plus each
member's trained adapter.

    base: smollm2-135m-instruct
    seed: 0
    members:
      - name: arithmetic
        subset: {source: procedural, domain: arithmetic, size: 48}
      - name: coder
        system_prompt: You write code.
        subset: {source: records, task: jsonl, options: {path: data/all.jsonl},
                 prompt_field: instruction, response_field: output, where: {category: code}, size: 200}
    sft: {learning_rate: 2.0e-4, epochs: 1, batch_size: 4, max_length: 192, lora: {r: 8, alpha: 16}}
    diversity: {max_new_tokens: 48}
    sparta: {run: {rounds: 2, instructions_per_round: 12}, judge: {type: likelihood}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, ValidationError, field_validator, model_validator

from sparta.config import (
    ConfigError,
    LoraConfig,
    SamplingConfig,
    StrictModel,
    apply_overrides,
    format_validation_error,
    read_yaml,
)

BASE_MEMBER = "base"
"""The name of the untrained reference row in the diversity measures (``diversity.include_base``)."""


class ProceduralSubset(StrictModel):
    """Worked, correct examples of one built-in procedural domain (``sparta.tasks.procedural_expert_examples``)."""

    source: Literal["procedural"] = Field(..., description="procedural: worked examples generated in-process")
    domain: str = Field(..., description="a built-in procedural domain: arithmetic, unit_conversion, ...")
    size: int = Field(
        64, ge=1, description="examples to train on; more: a stronger expert, a longer SFT. Ours: minutes on CPU"
    )
    seed: int | None = Field(None, description="the examples' seed; none: the init-pool seed")

    @field_validator("domain")
    @classmethod
    def _known_domain(cls, domain: str) -> str:
        from sparta.tasks import procedural_domains

        if domain not in procedural_domains():
            raise ValueError(f"unknown procedural domain {domain!r}; known: {', '.join(procedural_domains())}")
        return domain


class RecordsSubset(StrictModel):
    """Instruction/response records read by a registered task loader (jsonl, json, csv, hf_dataset).

    One file per member, or one shared file split by a field: ``where: {category: code}`` keeps the records whose
    ``category`` equals ``code``. ``size`` caps the subset with a seeded sample (drawn per member).
    """

    source: Literal["records"] = Field(..., description="records: instruction/response pairs read from a file")
    task: str = Field("jsonl", description="a task loader that reads records: jsonl, json, csv, hf_dataset")
    options: dict[str, Any] = Field(default_factory=dict, description="the loader's options: path, split, ...")
    prompt_field: str = Field("prompt", description="the record field holding the instruction")
    response_field: str = Field("response", description="the record field holding the answer to train on")
    where: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="keep only records whose fields equal these values (e.g. {category: code}); empty: all",
    )
    size: int | None = Field(None, ge=1, description="at most this many examples (a seeded sample); none: all")

    @model_validator(mode="after")
    def _fields_are_ours(self) -> RecordsSubset:
        taken = {"prompt_field", "answer_field", "answer_type", "meta_fields"} & set(self.options)
        if taken:
            raise ValueError(f"options {sorted(taken)} are set by init-pool; use prompt_field/response_field/where")
        return self


Subset = Annotated[Union[ProceduralSubset, RecordsSubset], Field(discriminator="source")]


class InitMember(StrictModel):
    """A member to make: its name, optional system prompt and sampling (carried into the run), its SFT subset."""

    name: str = Field(
        ...,
        min_length=1,
        pattern=r"^[A-Za-z0-9_\-]+$",
        description="the member's name in the run (letters, digits, '_', '-'); unique",
    )
    system_prompt: str | None = Field(
        None, description="a system message in SFT and, carried into the run, in combat; none: no system message"
    )
    sampling: SamplingConfig | None = Field(
        None, description="this member's combat sampling in the written run configuration; none: the pool's"
    )
    subset: Subset = Field(..., description="what this member is fine-tuned on: procedural or records")


class SFTSettings(StrictModel):
    """Supervised fine-tuning of every member's LoRA adapter; the loss covers the assistant turn only."""

    learning_rate: float = Field(
        2e-4,
        gt=0,
        lt=1,
        description="AdamW's peak learning rate; larger: members drift further from the base. Ours: a usual LoRA SFT "
        "rate (configs/pool-demo.yaml uses 1e-3 so that 135M experts differ measurably; docs/pool-init.md)",
    )
    epochs: float = Field(1.0, gt=0, description="passes over each member's subset")
    batch_size: int = Field(4, ge=1, description="examples per device step; larger: more memory")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="device steps per optimizer step: the effective batch is batch_size * this"
    )
    max_length: int = Field(
        256,
        ge=16,
        description="longest example in the chat template, in the base's tokens; longer ones are skipped and "
        "counted, never truncated. Ours",
    )
    lora: LoraConfig = Field(
        default_factory=LoraConfig, description="each member's adapter; the run trains the same adapter further"
    )


class DiversitySettings(StrictModel):
    """Held-out prompts with gold answers, answered greedily by every member after initialisation.

    With the default procedural task, ``options`` default to the procedural members' domains (all verifiable
    domains when there are none), 20 prompts per domain and the init-pool seed; the prompts come from another
    random stream than the SFT examples, and any prompt that also is an SFT prompt is left out.
    """

    enabled: bool = Field(True, description="false: skip the diversity measures (faster; no expertise matrix)")
    task: str = Field("procedural", description="a registered task with gold answers to score the members on")
    options: dict[str, Any] = Field(
        default_factory=dict, description="the task's options; procedural defaults are filled in (see above)"
    )
    per_domain: int = Field(
        20, ge=1, description="procedural default: prompts per domain; more: tighter accuracies, longer measurement"
    )
    max_new_tokens: int = Field(
        48, ge=1, description="longest greedy answer, in the member's tokens; too few cuts answers before the result"
    )
    batch_size: int = Field(8, ge=1, description="prompts answered per forward batch")
    include_base: bool = Field(True, description=f"add the untrained base as a reference row named {BASE_MEMBER!r}")


class InitPoolConfig(StrictModel):
    base: str = Field(..., min_length=1, description="the shared base model: alias, local path or hub id")
    seed: int = Field(0, description="SFT order, subset samples and diversity prompts derive from it")
    members: list[InitMember] = Field(..., min_length=1, description="the experts to make, one LoRA adapter each")
    sft: SFTSettings = Field(default_factory=SFTSettings, description="fine-tuning shared by every member")
    diversity: DiversitySettings = Field(
        default_factory=DiversitySettings, description="who is expert at what, measured after SFT"
    )
    sparta: dict[str, Any] = Field(
        default_factory=dict,
        description="sections of the run configuration written beside the pool (run, data, judge, training, pool "
        "minus members); validated as a run configuration",
    )

    @model_validator(mode="after")
    def _names(self) -> InitPoolConfig:
        names = [m.name for m in self.members]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"members: duplicate names {dupes}")
        if self.diversity.include_base and BASE_MEMBER in names:
            raise ValueError(
                f"members: {BASE_MEMBER!r} names the diversity reference row; rename the member "
                "or set diversity.include_base=false"
            )
        members = (self.sparta.get("pool") or {}).get("members") if isinstance(self.sparta.get("pool"), dict) else None
        if members is not None:
            raise ValueError("sparta.pool.members: init-pool fills it in from members; remove it")
        return self

    def procedural_domains(self) -> list[str]:
        """The domains of the procedural members, in member order, each once."""
        domains = [m.subset.domain for m in self.members if isinstance(m.subset, ProceduralSubset)]
        return list(dict.fromkeys(domains))


def init_config_from_dict(
    data: dict[str, Any], source: str = "configuration", overrides: list[str] | None = None
) -> InitPoolConfig:
    data = apply_overrides(dict(data or {}), list(overrides or []))
    try:
        return InitPoolConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, "init-pool configuration")) from None


def load_init_config(path: str | Path, overrides: list[str] | None = None) -> InitPoolConfig:
    """Read an init-pool YAML file (``extends:`` works as for run configurations) and apply ``a.b=value`` overrides."""
    return init_config_from_dict(read_yaml(Path(path)), str(path), overrides)
