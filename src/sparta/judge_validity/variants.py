"""Each member sampling at several temperatures: extra pool entries that only answer.

A variant is a copy of a member (same model, adapter, system prompt, LoRA initialisation: ``clone_of``) whose
sampling differs only in temperature, named ``MEMBER-tNNN`` (NNN = temperature x 100). The members themselves stay
in the pool and judge; the variants answer. Without temperatures every member answers at its own temperature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sparta.config import MemberConfig, PoolConfig


@dataclass(frozen=True)
class SamplingVariant:
    """The pool entry ``source`` answers as ``member`` at ``temperature``."""

    source: str
    member: str
    temperature: float


def variant_name(member: str, temperature: float) -> str:
    return f"{member}-t{round(temperature * 100):03d}"


def _variant(member: MemberConfig, pool: PoolConfig, temperature: float) -> MemberConfig:
    sampling = (member.sampling or pool.sampling).model_copy(update={"temperature": temperature})
    return member.model_copy(
        update={
            "name": variant_name(member.name, temperature),
            "clone_of": member.clone_of or member.name,
            "sampling": sampling,
        }
    )


def sampling_variants(
    pool: PoolConfig, temperatures: Sequence[float] | None
) -> tuple[PoolConfig, list[SamplingVariant]]:
    """The pool with one variant per (member, temperature), and who answers as whom; none: the members' own."""
    if not temperatures:
        own = [SamplingVariant(m.name, m.name, (m.sampling or pool.sampling).temperature) for m in pool.members]
        return pool, own
    if len(set(temperatures)) != len(temperatures) or any(not 0 <= t <= 5 for t in temperatures):
        raise ValueError(f"temperatures must be distinct and within [0, 5], got {list(temperatures)}")
    clones = [_variant(m, pool, t) for m in pool.members for t in temperatures]
    taken = {m.name for m in pool.members} & {c.name for c in clones}
    if taken:
        raise ValueError(f"pool members {sorted(taken)} already use the names of temperature variants")
    variants = [SamplingVariant(variant_name(m.name, t), m.name, t) for m in pool.members for t in temperatures]
    return pool.model_copy(update={"members": [*pool.members, *clones]}), variants
