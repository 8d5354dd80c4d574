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

OUTPUT_OR_EMBEDDING_MODULES = frozenset({"lm_head", "embed_tokens", "embed_out", "wte", "wpe"})
"""Module names of the output head and the token embeddings in common architectures; the vLLM engine refuses
adapters that train them."""

ANSWER_END_TOKENS = 8
"""Room a derived ``training.max_length`` leaves after the longest answer: the template's end-of-turn tokens
(ChatML writes two) and slack for an answer whose text re-tokenizes a little longer than it was generated."""


class StrictModel(BaseModel):
    """A configuration section: unknown fields are errors (a typo never passes silently), assignments validate."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _registered(registry: Any, name: str) -> str:
    """``name`` if ``registry`` has it; pydantic reports a ValueError with the near names and the known ones."""
    from sparta.registry import UnknownNameError

    try:
        return registry.check(name)
    except UnknownNameError as err:
        raise ValueError(str(err)) from None


class TournamentConfig(StrictModel):
    """Match-making, aggregation and the reputation update."""

    initial_rating: float = Field(
        100.0,
        gt=0,
        description="R0, every member's reputation before the first match (rating points). Only differences and "
        "the judges' relative weights matter; higher R0 with the same steps flattens the weights. Authors' code: 100",
    )
    initial_sigma: float = Field(
        0.5,
        gt=0,
        description="sigma0, a member's deviation until two rating changes exist (rating points). Larger: bigger "
        "first steps (tanh(sigma) grows) and a flatter Phi term. Authors' code: 0.5",
    )
    kappa0: float = Field(
        10.0,
        gt=0,
        description="kappa0, the step size before any decay (rating points per unit of score difference, before "
        "scale). Larger: ratings move faster. Authors' code: 10",
    )
    kappa_min: float = Field(
        5.0,
        ge=0,
        description="floor of the decayed step size kappa; at most kappa0. Larger: late pairs keep moving ratings. "
        "Authors' code: 5",
    )
    decay: float = Field(
        0.9,
        gt=0,
        le=1,
        description="kappa = max(kappa_min, kappa0 * decay ** (updates / decay_steps)); 1 turns decay off, smaller "
        "decays faster. Authors' code: 0.9",
    )
    decay_steps: int = Field(
        10,
        ge=1,
        description="rated pairs per factor of decay in kappa; larger decays more slowly. Authors' code: 10",
    )
    eps: float = Field(
        0.01,
        ge=0,
        le=1,
        description="floor of the outcome factor |Phi(z) - Phi(-z)|, so equal ratings still move; larger moves equal "
        "ratings more. Authors' code: 0.01",
    )
    window: int = Field(
        10,
        ge=2,
        description="how many of a member's latest rating changes its sigma is computed from; larger: a steadier "
        "sigma. Authors' code: 10",
    )
    sigma_min: float = Field(
        0.1,
        gt=0,
        description="floor of sigma (rating points), so a member whose rating settled can still move. "
        "Authors' code: 0.1",
    )
    scale: float = Field(
        20.0,
        gt=0,
        description="divides every rating change; larger: smaller steps. Authors' code: 20",
    )
    rating_floor: float = Field(
        10.0,
        ge=0,
        description="ratings never drop below this (rating points), so a judge's weight stays positive. "
        "Authors' code: 10",
    )
    alpha: float = Field(
        0.6,
        ge=0,
        le=1,
        description="probability that a match's opponent is drawn uniformly from the other members; otherwise from "
        "the k closest-rated. 1: random pairing (the ablation), 0: always a close rival. Authors' script: 0.6",
    )
    k: int = Field(
        5,
        ge=1,
        description="how many closest-rated members the non-random opponent is drawn from (ties broken at random); "
        "smaller: closer rivals. Authors' script: 5 (for m = 10 members)",
    )
    min_margin: float = Field(
        0.0,
        ge=0,
        description="a match becomes a preference pair only if its aggregated score margin (1-10 scale) is at least "
        "this; ties are always dropped. Larger: fewer, clearer pairs. Default 0 (ties only), as the authors",
    )
    aggregation: str = Field(
        "reputation",
        description="a registered rule combining the judges' scores: reputation (the paper's rating-weighted mean), "
        "uniform (plain mean), softmax (weights exp(rating / aggregation_temperature)), peer_rank (weights from "
        "agreement with the other judges), dawid_skene (weights from an EM model of each judge's accuracy)",
    )
    aggregation_temperature: float = Field(
        5.0,
        gt=0,
        description="softmax aggregation: a judge rated this many points above another gets e times its weight; "
        "smaller: reputation matters more (large: uniform). Ratings spread about 8 points in round 1 and 50 by "
        "round 8 at paper scale",
    )
    aggregation_iterations: int = Field(
        50,
        ge=1,
        description="peer_rank and dawid_skene: most re-estimations of the judges' reliability per round (each stops "
        "earlier once no weight moves by more than 1e-9)",
    )
    update_rule: str = Field(
        "paper",
        description="the outcome factor of the reputation update: a registered rule, paper (|Phi(z) - Phi(-z)|, as "
        "the paper's formula and the authors' code) or upset_aware (more credit for beating a stronger opponent)",
    )
    kappa_counter: Literal["advance_first", "advance_after"] = Field(
        "advance_first",
        description="when kappa's pair counter advances: advance_first (before kappa is computed, so the first pair "
        "gets kappa0 * decay ** (1 / decay_steps): the authors' RatingSystem) or advance_after (kappa from the pairs "
        "rated before this one, so the first pair gets kappa0: this project's former default)",
    )
    reset_kappa_each_round: bool = Field(
        False,
        description="restart kappa's update counter every round, as the authors' code does (a defect we do not "
        "reproduce by default); true: every round starts again at full step size",
    )
    judges: str = Field(
        "others",
        description="who judges a match: others (the members not fighting: the paper), all (every member, the "
        "two combatants included; needed with 2 members) or external (one fixed judge outside the pool, "
        "judge.external, as a reward model: the SPPO baseline)",
    )
    truncated: Literal["drop", "keep"] = Field(
        "drop",
        description="a pair with an answer cut by max_new_tokens (finish: length): drop (not trained on) or keep "
        "(trained on as the prefix it is: no end-of-turn token after the cut answer); both counted per round in "
        "training.json. Ours: the authors' code trains on cut answers as if they were complete",
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

    @field_validator("judges")
    @classmethod
    def _known_panel(cls, name: str) -> str:
        from sparta.tournament.panels import PANELS

        return _registered(PANELS, name)

    @model_validator(mode="after")
    def _kappa_order(self) -> TournamentConfig:
        if self.kappa_min > self.kappa0:
            raise ValueError(
                f"tournament.kappa_min ({self.kappa_min}) must not exceed tournament.kappa0 ({self.kappa0})"
            )
        return self


class SamplingConfig(StrictModel):
    """How a member samples its answers in combat."""

    temperature: float = Field(
        0.7,
        ge=0,
        le=5,
        description="softmax temperature of answer sampling; 0 is greedy, higher: more varied answers (and more "
        "distinct pairs to learn from). Authors' code: 0.7",
    )
    top_p: float = Field(
        0.9,
        gt=0,
        le=1,
        description="nucleus sampling: sample from the smallest token set holding this probability; 1 turns it off, "
        "smaller: safer, less varied answers. Ours (the authors sample with top_p 0.95 and top_k 50)",
    )
    max_new_tokens: int = Field(
        128,
        ge=1,
        le=32768,
        description="longest answer, in the member's tokens; an answer that reaches it is cut (finish: length). "
        "Authors' code: 128 in batch generation",
    )


class LoraConfig(StrictModel):
    """The LoRA adapter trained on each member (PEFT)."""

    r: int = Field(
        8, ge=1, description="rank of the low-rank update; larger: more trainable parameters and memory. PEFT's default"
    )
    alpha: int = Field(
        16,
        ge=1,
        description="LoRA scaling numerator: the update is scaled by alpha / r; larger: bigger steps. Ours: the common "
        "alpha = 2r",
    )
    dropout: float = Field(
        0.0, ge=0, lt=1, description="dropout on the LoRA input during training; 0: none. PEFT's default"
    )
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        description="names of the linear layers that get adapters; the default is every attention projection of "
        "Llama-style models (SmolLM2, Qwen2.5). Ours: every attention projection adapts more than q and v alone",
    )


class MemberConfig(StrictModel):
    """One pool member: a base model (hub id, local path or alias), optionally a LoRA adapter on it."""

    name: str = Field(
        ...,
        min_length=1,
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="the member's name in ratings, files and reports (letters, digits, '_', '.', '-'); unique",
    )
    model: str = Field(
        ...,
        min_length=1,
        description="the base model: a Hugging Face hub id, a local directory or a built-in alias "
        "(smollm2-135m-instruct, tiny-llama); members naming the same base share one copy in memory",
    )
    clone_of: str | None = Field(
        None,
        description="start as an exact copy of that member (model, adapter, prompt, sampling, LoRA initialisation); "
        "clones sample independently but judge and train identically, so they stay one model: Self-Rewarding",
    )
    adapter: str | None = Field(
        None,
        description="a PEFT LoRA adapter directory to start from (e.g. an init-pool expert); none: a fresh adapter, "
        "so round 1 answers with the base model",
    )
    system_prompt: str | None = Field(
        None, description="a system message before every instruction this member answers (a persona); none: no system"
    )
    sampling: SamplingConfig | None = Field(None, description="this member's sampling; none: pool.sampling")


class PoolConfig(StrictModel):
    """The members and how their models are loaded and prompted."""

    members: list[MemberConfig] = Field(
        default_factory=list,
        description="the pool, at least 2 members (3 with tournament.judges=others); the paper uses 10",
    )
    sampling: SamplingConfig = Field(
        default_factory=SamplingConfig, description="sampling of every member that sets none of its own"
    )
    trust_remote_code: bool = Field(
        False, description="let transformers run a model repository's own code; leave off unless you trust it"
    )
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field(
        "float32",
        description="weights' dtype; float32 on CPU (bf16 matmuls can be ~100x slower without avx512_bf16), "
        "bfloat16 on a GPU halves memory; auto: measured once per machine and model (cached): bfloat16 where it runs "
        "at least 1.2x faster than float32 here and moves no probe judge score by more than 0.25, else float32 "
        "(docs/judges.md; the vLLM engine passes auto to its server, which then uses the checkpoint's dtype). Ours",
    )
    device: str = Field("cpu", description="torch device for every member: cpu, cuda, cuda:1, mps")
    max_prompt_tokens: int = Field(
        1024,
        ge=8,
        description="longest instruction in a member's chat template, in its tokens; a longer prompt is never "
        "truncated silently (see long_prompt). Ours: room for the longest MATH and NormAd prompts",
    )
    long_prompt: Literal["error", "skip"] = Field(
        "error",
        description="a prompt over max_prompt_tokens: error (stop the run, naming the instruction) or skip (the "
        "member records an empty, skipped answer and the match is neither judged nor trained on)",
    )
    generation_batch_size: int = Field(
        64,
        ge=1,
        description="answers generated per forward batch, every member's requests together (each row with its own "
        "adapter); larger: faster on wide hardware, more memory (the KV cache grows with batch x length), coarser "
        "resume checkpoints. Ours: 64; on 2 CPU cores decoding SmolLM2 is bound by reading the weights, so rows "
        "come almost free: 128 answers ran at 107 tok/s in batches of 64 against 87 in batches of 32, 48 answers "
        "(the demo's round) at 102 in one batch against 80 in batches of 32 and 16 (benchmarks/README.md)",
    )
    engine: str = Field(
        "hf",
        description="what answers and judges: hf (transformers + PEFT in this process) or vllm (vLLM's "
        "OpenAI-compatible server(s), every member a LoRA adapter on one base; section vllm). Training stays with "
        "TRL + PEFT either way",
    )

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, name: str) -> str:
        from sparta.backends.base import ENGINES

        return _registered(ENGINES, name)

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

    def longest_answer_tokens(self) -> int:
        """The largest ``max_new_tokens`` any member may sample (its own sampling, or the pool's)."""
        samplings = [m.sampling or self.sampling for m in self.members] or [self.sampling]
        return max(s.max_new_tokens for s in samplings)

    @model_validator(mode="after")
    def _unique_names(self) -> PoolConfig:
        names = [m.name for m in self.members]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"pool.members: duplicate member names {dupes}")
        return self


class ExternalJudgeConfig(StrictModel):
    """The one judge outside the pool when tournament.judges=external: a fixed reward model, as SPPO needs."""

    model: str | None = Field(
        None,
        description="the judge's model: a hub id, local directory or alias; none: the first member's model (the "
        "pool's base), so by default the untrained base judges with judge.type",
    )
    adapter: str | None = Field(None, description="a PEFT LoRA adapter on that model; none: the plain model")
    system_prompt: str | None = Field(
        None, description="a system message before every instruction the judge reads; none: no system message"
    )


class JudgeConfig(StrictModel):
    """How every judge turns a response into a 1-10 score (which members judge is tournament.judges)."""

    type: str = Field(
        "generate",
        description='a registered judge type: generate (the judge writes {"score": N}: the paper), logprob '
        "(expected score under the next-token distribution over 1..10) or likelihood (the judge's own likelihood of "
        "the response, no prompt). Measure with sparta judge-check before trusting one",
    )
    batch_size: int = Field(
        8,
        ge=1,
        description="judge requests per forward batch, every judge's together (each row with its own adapter); "
        "larger: faster on wide hardware, more memory (likelihood: batch x response tokens x vocabulary logits)",
    )
    max_new_tokens: int = Field(
        32,
        ge=1,
        description="generate judge: most tokens the judge may write before its score must have appeared; "
        'fewer: faster, more unparseable judgments. Ours: {"score": N} takes under 10 tokens',
    )
    max_response_tokens: int = Field(
        512,
        ge=1,
        description="a response is cut to this many of the judge's tokens before it is judged; larger: long answers "
        "judged whole, more memory. Ours: 512, the authors' training max_length",
    )
    likelihood_repeat_ngram: int = Field(
        4,
        ge=0,
        le=64,
        description="likelihood judge: leave out tokens of repeated n-grams of this size and scale the score by the "
        "share kept, so repetitive answers score lower; smaller n catches more repetition; 0: off. Ours",
    )
    likelihood_min_tokens: int = Field(
        0,
        ge=0,
        description="likelihood judge: scale the probability by min(1, tokens / this), so answers shorter than this "
        "many tokens score lower; 0: off. Ours",
    )
    external: ExternalJudgeConfig = Field(
        default_factory=ExternalJudgeConfig,
        description="the judge of tournament.judges=external (ignored otherwise); it scores with judge.type",
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, name: str) -> str:
        from sparta.backends.base import JUDGES

        return _registered(JUDGES, name)


class TrainingConfig(StrictModel):
    """DPO with LoRA (TRL); the paper uses lr 1e-6 at 7B scale, small CPU models need a larger step."""

    beta: float = Field(
        0.1,
        gt=0,
        description="DPO's beta: higher means less deviation from the reference (the member at the start of the "
        "round). Paper and authors' code: 0.1",
    )
    learning_rate: float = Field(
        1e-6,
        gt=0,
        lt=1,
        description="AdamW's peak learning rate; larger: each round moves members further. Paper and authors' code: "
        "1e-6 at 7B; 135M models on CPU need a larger step (configs/smollm2.yaml: 5e-5)",
    )
    epochs: float = Field(
        1.0, gt=0, description="passes over the round's preference pairs per member. Authors' code: 1"
    )
    batch_size: int = Field(
        4,
        ge=1,
        description="preference pairs per device step; larger: more memory. Ours: fits a 135M model on 2 CPU "
        "cores (the authors: 1 per device with gradient accumulation)",
    )
    gradient_accumulation_steps: int = Field(
        1,
        ge=1,
        description="device steps per optimizer step: the effective batch is batch_size * this; larger: smoother, "
        "fewer steps. Ours: 1, as few pairs per round at CPU scale",
    )
    max_length: int | None = Field(
        None,
        ge=16,
        description="longest prompt + answer a member trains on, in its tokens; a pair that does not fit whole is "
        "dropped and counted (training.json: pairs_too_long), never trained on cut. Unset: pool.max_prompt_tokens "
        "+ the largest sampling.max_new_tokens + 8 (the end-of-turn tokens), so every answered prompt fits; a value "
        "below pool.max_prompt_tokens + max_new_tokens is an error. Authors' code: 512",
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="arithmetic of the DPO steps: auto (that of the pool's weights: a bfloat16 pool trains under bf16 "
        "autocast, a float16 pool under fp16 autocast with loss scaling, a float32 pool in float32), fp32 (no "
        "autocast), bf16 or fp16 (autocast over any weights). LoRA weights and optimizer state stay float32. Ours "
        "(TRL turns bf16 on by default, ~100x slower on CPUs without native bf16)",
    )
    reference_batch_size: int | None = Field(
        None,
        ge=1,
        description="preference pairs per forward pass of the reference log-probabilities (the member before its "
        "first update, computed once, without gradients: it may exceed batch_size); larger: faster on wide hardware, "
        "more memory. Unset: batch_size * gradient_accumulation_steps",
    )
    loss_type: Literal["sigmoid", "sppo_hard"] = Field(
        "sigmoid",
        description="TRL's preference loss: sigmoid (DPO: -log sigmoid(beta x the log-ratio margin); the paper) or "
        "sppo_hard (SPPO with hard win probabilities: the chosen answer's log-ratio to the reference is pulled to "
        "+1/(2 beta) and the rejected one's to -1/(2 beta), squared errors; the SPPO baseline)",
    )
    lora: LoraConfig = Field(default_factory=LoraConfig, description="the adapter every member trains")
    report_to: list[str] = Field(
        default_factory=list,
        description="training loggers, as transformers' report_to (tensorboard, wandb); empty: none",
    )
    enabled: bool = Field(
        True, description="false: no training, the members stay as they started (the best-init baseline)"
    )


class SimulationConfig(StrictModel):
    """The synthetic tribe: latent skills per domain, noisy judges, training that pulls toward winners."""

    domains: list[str] = Field(
        default_factory=lambda: ["math", "code", "knowledge", "reasoning", "writing"],
        description="the skill dimensions; an instruction of another domain is mapped to one of them by a hash",
    )
    skill_mean: float = Field(0.0, description="mean of the members' latent skills (logit units)")
    skill_spread: float = Field(
        1.0, ge=0, description="sd of the latent skills across members and domains; larger: a more diverse pool"
    )
    response_noise: float = Field(
        1.0, ge=0, description="sd of a response's quality around its author's skill (logit units)"
    )
    judge_noise: float = Field(
        1.5, ge=0, description="sd of a judge's error for a judge of skill 0 (logit units); larger: noisier judges"
    )
    judge_noise_skill_slope: float = Field(
        0.5,
        ge=0,
        description="judge sd = judge_noise * exp(-slope * skill): larger makes skilled judges much more reliable "
        "(what reputation weighting exploits); 0: every judge equally noisy",
    )
    judge_failure_rate: float = Field(
        0.02, ge=0, le=1, description="probability that a judgment is unreadable (excluded and counted)"
    )
    learning_rate: float = Field(
        0.05, ge=0, description="skill gained per unit of (winner - self) per pair share; 0: no learning"
    )
    judge_noise_model: Literal["skill", "independent"] = Field(
        "skill",
        description="what sets a judge's noise: 'skill' its current answering skill (stronger members judge better, "
        "the default, as in earlier releases); 'independent' a fixed judging ability drawn like the skills but "
        "independently of them (reliability unequal and unrelated to skill)",
    )
    unreliable_judges: dict[str, float] = Field(
        default_factory=dict,
        description="share of the members (0-1) that judge unreliably, per kind: noisy, inverted (adversarial), "
        "biased (scores a style latent unrelated to quality), colluding (favour one member); e.g. {inverted: 0.3}; "
        "round(share * members) judges per kind, chosen by a stable hash; the rest are honest",
    )
    unreliable_noise_factor: float = Field(
        4.0, ge=1, description="a noisy judge's error sd as a multiple of its honest sd; larger: noisier"
    )
    style_spread: float = Field(
        1.0,
        ge=0,
        description="sd of a response's style latent (logit units), which biased judges score instead of quality",
    )
    collusion_boost: float = Field(
        3.0, ge=0, description="added to a colluding judge's perception of its ally's answers (logit units)"
    )

    @field_validator("unreliable_judges")
    @classmethod
    def _known_kinds(cls, shares: dict[str, float]) -> dict[str, float]:
        if not shares:
            return shares
        from sparta.backends.simulated.judges import HONEST, JUDGE_KINDS

        for kind, share in shares.items():
            if kind == HONEST:
                raise ValueError("'honest' is not an unreliable kind: the members not listed are honest")
            _registered(JUDGE_KINDS, kind)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"share of {kind!r} judges is {share}, allowed: 0 to 1")
        if sum(shares.values()) > 1.0 + 1e-9:
            raise ValueError(f"the shares add up to {sum(shares.values()):g}, more than all members")
        return shares


class DataConfig(StrictModel):
    """Where instructions come from; a registered task by name with its options."""

    task: str = Field(
        "procedural",
        description="a registered task: procedural (built in, no files), jsonl, json, csv, hf_dataset, or one of the "
        "SPARTA authors' instruction sets (gsm8k, math, ...; their files are not shipped)",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="the task's own options (path, split, fields...), validated by its loader; unknown ones are named",
    )
    holdout_fraction: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="share of the task's instructions kept away from combat for sparta eval (a seeded split); "
        "larger: more evaluation items, fewer to fight on. Ours: the usual 80/20 split",
    )

    @field_validator("task")
    @classmethod
    def _known_task(cls, name: str) -> str:
        from sparta.tasks import TASKS

        return _registered(TASKS, name)


class BackendConfig(StrictModel):
    """What plays the pool, and where."""

    kind: str = Field(
        "hf",
        description="a registered tribe backend: hf (transformers + PEFT models) or simulated (a synthetic tribe "
        "with latent skills, section simulation, for ablations in seconds)",
    )
    placement: str = Field(
        "local",
        description="a registered placement of the tribe: local (this process) or ray (data-parallel Ray workers, "
        "each holding the base model(s) and every member's adapter; see the ray section). Results do not depend on it",
    )

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, name: str) -> str:
        from sparta.backends.base import TRIBES

        return _registered(TRIBES, name)

    @field_validator("placement")
    @classmethod
    def _known_placement(cls, name: str) -> str:
        from sparta.backends.base import PLACEMENTS

        return _registered(PLACEMENTS, name)


class RayConfig(StrictModel):
    """The Ray cluster of ``backend.placement: ray``: where it is and how the tribe's workers are sized."""

    address: str | None = Field(
        None,
        description="none: the cluster this process already joined (ray.init) or else a private local cluster that "
        "sparta starts on 127.0.0.1 and shuts down; 'auto': the cluster running on this machine (ray start); "
        "HOST:PORT: the cluster whose head listens there",
    )
    workers: int = Field(
        2, ge=1, description="data-parallel worker actors; each loads the base model(s) and every member's adapter"
    )
    gpus_per_worker: float = Field(
        0.0,
        ge=0,
        le=1,
        description="GPUs each worker reserves (0.5: two workers share one GPU); more than 0 needs pool.device "
        "cuda, and each worker then computes on its own GPU",
    )
    cpus_per_worker: float = Field(
        1.0,
        gt=0,
        description="CPU cores each worker reserves; its torch thread count is this, rounded down (at least 1)",
    )
    object_store_mb: int = Field(
        512,
        ge=64,
        description="private cluster only: shared memory for Ray objects (shards, results, adapters), in MiB; "
        "larger objects spill to disk. Ray's own default would take 30% of the machine's memory",
    )

    @field_validator("address")
    @classmethod
    def _address_form(cls, address: str | None) -> str | None:
        if address is None or address == "auto" or address.startswith("ray://"):
            return address
        host, colon, port = address.rpartition(":")
        if not (colon and host and port.isdigit()):
            raise ValueError(f"expected none, 'auto', HOST:PORT or ray://HOST:PORT, got {address!r}")
        return address


class TrackerConfig(StrictModel):
    """One experiment tracker that logs the run itself (ratings, pairs, judge failures, DPO metrics, stage times).

    Written as a name (``tracking: [tensorboard]``) or as a mapping when a field differs from its default.
    """

    type: str = Field(..., description="a registered tracker: tensorboard, wandb, trackio, mlflow")
    dir: str | None = Field(
        None,
        description="where the tracker writes; default RUN/tracking/TYPE; a relative path is taken from the run "
        "directory (mlflow: the directory of its SQLite store mlflow.db; trackio: its TRACKIO_DIR)",
    )
    project: str | None = Field(
        None, description="wandb and trackio project, mlflow experiment; default run.name (tensorboard: unused)"
    )
    offline: bool = Field(
        True,
        description="wandb only: write the run locally for a later `wandb sync` (true) or stream it to the W&B "
        "server (false)",
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, name: str) -> str:
        from sparta.tracking.writers import WRITERS

        return _registered(WRITERS, name)


class VllmConfig(StrictModel):
    """The vLLM engine (``pool.engine=vllm``): the server(s) that answer and judge, or how to start one.

    docs/scaling.md explains each knob with GPU examples.
    """

    urls: list[str] = Field(
        default_factory=list,
        description="base URLs of running vLLM OpenAI-compatible servers (http://host:port), started with "
        "--enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=1; requests are sharded over them. Empty: sparta starts "
        "one on 127.0.0.1 with the python below and stops it at exit",
    )
    python: str | None = Field(
        None,
        description="interpreter of an environment that has vLLM, used to start the server; default "
        ".venv-vllm/bin/python (make vllm) when it exists, else this interpreter",
    )
    server_run_dir: str | None = Field(
        None,
        description="the run directory as the server sees it, when it mounts it at another path; adapters are "
        "loaded from there. Default: the same path",
    )
    start_timeout: float = Field(
        900.0,
        gt=0,
        description="seconds to wait for a started server to answer /health; a slow first start (imports, weights) "
        "needs more. Measured: 35-120 s for SmolLM2 on 2 CPU cores",
    )
    request_timeout: float = Field(
        900.0, gt=0, description="seconds one HTTP request may take before it counts as failed"
    )
    parallel_requests: int = Field(
        64,
        ge=1,
        description="requests in flight per server; the server batches them, so more: fuller batches and more "
        "memory (KV cache). Requests beyond this wait in this process",
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="OMP threads of a started server (CPU); default: every CPU this process may use, since the "
        "server computes while this process waits and this process trains while the server idles",
    )
    kv_cache_gb: float = Field(
        1.0,
        gt=0,
        description="CPU only: KV cache of a started server in GiB (VLLM_CPU_KVCACHE_SPACE); larger: more requests "
        "batched at once. GPUs size it with --gpu-memory-utilization in extra_args",
    )
    max_model_len: int | None = Field(
        None,
        ge=16,
        description="context length of a started server (prompt + answer tokens); default: the model's. Smaller: "
        "less KV cache per request",
    )
    lora_target_modules: list[str] | None = Field(
        None,
        description="modules a started server applies LoRA to (--lora-target-modules); default "
        "training.lora.target_modules. Never lm_head or embeddings: vLLM's CPU LoRA kernels fail on prompt "
        "log-probs with an adapter on the output head",
    )
    extra_args: list[str] = Field(
        default_factory=list,
        description="further arguments for a started server, e.g. ['--data-parallel-size', '4'] or "
        "['--gpu-memory-utilization', '0.85']",
    )


class RunConfig(StrictModel):
    """The run as a whole."""

    name: str = Field("sparta", description="the run's title in reports and comparisons")
    seed: int = Field(
        0,
        description="every random choice (holdout split, instructions drawn, match-making, sampling, training) "
        "derives from it; the same seed and configuration give the same run",
    )
    rounds: int = Field(
        8,
        ge=1,
        description="SPARTA rounds; may change when a run is resumed (to extend it), as may where the tribe runs "
        "(backend.placement, the ray section). Paper: 8",
    )
    instructions_per_round: int = Field(
        1000,
        ge=1,
        description="instructions drawn (fresh, seeded) each round, one match each; capped at what the task has. "
        "Paper: 1000",
    )


class SpartaConfig(StrictModel):
    run: RunConfig = Field(default_factory=RunConfig, description="name, seed, rounds, instructions per round")
    backend: BackendConfig = Field(default_factory=BackendConfig, description="what plays the pool")
    data: DataConfig = Field(default_factory=DataConfig, description="where instructions come from")
    tournament: TournamentConfig = Field(
        default_factory=TournamentConfig, description="match-making, aggregation, the reputation update, pairs"
    )
    pool: PoolConfig = Field(default_factory=PoolConfig, description="the members and how they are loaded")
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="how judges score")
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="DPO with LoRA")
    simulation: SimulationConfig = Field(
        default_factory=SimulationConfig, description="the synthetic tribe (backend.kind=simulated only)"
    )
    tracking: list[TrackerConfig] = Field(
        default_factory=list,
        description="experiment trackers logging the run per round (none by default); may change when a run resumes",
    )
    vllm: VllmConfig = Field(
        default_factory=VllmConfig, description="the vLLM server(s) of pool.engine=vllm (ignored otherwise)"
    )

    @field_validator("tracking", mode="before")
    @classmethod
    def _tracker_names(cls, value: Any) -> Any:
        """``tracking: tensorboard`` and ``tracking: [tensorboard, {type: wandb, offline: false}]`` both work."""
        value = [value] if isinstance(value, (str, dict)) else value
        if not isinstance(value, list):
            return value
        return [{"type": item} if isinstance(item, str) else item for item in value]

    @field_validator("tracking")
    @classmethod
    def _one_tracker_of_each_type(cls, trackers: list[TrackerConfig]) -> list[TrackerConfig]:
        types = [t.type for t in trackers]
        dupes = sorted({t for t in types if types.count(t) > 1})
        if dupes:
            raise ValueError(f"tracking: {dupes} listed more than once; each tracker type logs the run once")
        return trackers

    ray: RayConfig = Field(default_factory=RayConfig, description="the cluster of backend.placement=ray")

    @model_validator(mode="after")
    def _outside_judge(self) -> SpartaConfig:
        from sparta.tournament.panels import EXTERNAL_JUDGE, OUTSIDE_PANELS

        if self.tournament.judges not in OUTSIDE_PANELS:
            return self
        panel = f"tournament.judges={self.tournament.judges}"
        if self.tournament.aggregation != "uniform":
            raise ValueError(
                f"{panel}: one judge outside the pool has no reputation to weight its scores by; set "
                f"tournament.aggregation=uniform (got {self.tournament.aggregation})"
            )
        if self.backend.kind != "hf":
            raise ValueError(
                f"{panel}: an outside judge is a model; it needs backend.kind=hf (got {self.backend.kind})"
            )
        if self.pool.engine != "hf":
            raise ValueError(f"{panel}: an outside judge runs on the hf engine only; set pool.engine=hf")
        if self.backend.placement != "local":
            raise ValueError(f"{panel}: an outside judge runs in this process only; set backend.placement=local")
        if EXTERNAL_JUDGE in self.member_names():
            raise ValueError(f"pool.members: {EXTERNAL_JUDGE!r} is the name of the outside judge of {panel}")
        return self

    @model_validator(mode="after")
    def _enough_judges(self) -> SpartaConfig:
        n = len(self.pool.members)
        if n == 2 and self.tournament.judges == "others":
            raise ValueError("pool.members: with 2 members no one is left to judge a match; set tournament.judges=all")
        return self

    @model_validator(mode="after")
    def _servable_by_vllm(self) -> SpartaConfig:
        if self.pool.engine != "vllm":
            return self
        bases = sorted({m.model for m in self.pool.members})
        if len(bases) > 1:
            raise ValueError(f"pool.engine=vllm serves one base model with one adapter per member; members use {bases}")
        heads = sorted(set(self.training.lora.target_modules) & OUTPUT_OR_EMBEDDING_MODULES)
        if heads:
            raise ValueError(
                f"training.lora.target_modules: {heads} cannot be served by pool.engine=vllm (vLLM's LoRA on the "
                "output head or embeddings breaks its log-probs); adapt only inner layers, e.g. q_proj k_proj "
                "v_proj o_proj"
            )
        return self

    @model_validator(mode="after")
    def _answers_fit_training(self) -> SpartaConfig:
        """Every prompt that may be answered and judged must fit DPO with its answer: ``training.max_length`` is
        derived when unset and checked when set."""
        prompt, answer = self.pool.max_prompt_tokens, self.pool.longest_answer_tokens()
        if self.training.max_length is None:
            self.training = self.training.model_copy(update={"max_length": prompt + answer + ANSWER_END_TOKENS})
        elif self.training.max_length < prompt + answer:
            raise ValueError(
                f"training.max_length ({self.training.max_length}) is shorter than pool.max_prompt_tokens ({prompt}) "
                f"+ the longest sampling max_new_tokens ({answer}): answers to prompts that generate and are judged "
                f"fine would be dropped from training. Raise training.max_length to at least {prompt + answer} "
                f"(or leave it unset: {prompt + answer + ANSWER_END_TOKENS}), or lower pool.max_prompt_tokens to "
                f"{max(self.training.max_length - answer, 8)}"
            )
        return self

    @model_validator(mode="after")
    def _ray_fits_the_pool(self) -> SpartaConfig:
        if self.backend.placement != "ray":
            return self
        if self.backend.kind != "hf":
            raise ValueError(
                f"backend.placement=ray places HF members on Ray workers; backend.kind={self.backend.kind!r} "
                "runs in one process: use backend.placement=local"
            )
        on_gpu = self.pool.device.startswith("cuda")
        if on_gpu != (self.ray.gpus_per_worker > 0):
            raise ValueError(
                f"pool.device={self.pool.device!r} and ray.gpus_per_worker={self.ray.gpus_per_worker} disagree: "
                "workers compute on GPUs only when they reserve some; set both (pool.device=cuda with "
                "ray.gpus_per_worker>0) or neither"
            )
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


def read_yaml_file(path: Path, what: str = "configuration file") -> Any:
    """The YAML document in ``path``; a missing or unreadable file, or bad YAML, is a ConfigError naming the file
    (and the line)."""
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(err, 'problem', err)}") from None


def read_yaml(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A configuration file as a dict; ``extends: OTHER.yaml`` (relative to the file) is read first and overlaid
    (sections merge key by key, lists and ``options`` mappings are replaced)."""
    data = read_yaml_file(path) or {}
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
