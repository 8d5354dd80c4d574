"""How each simulated judge turns a response into a score: honest, or unreliable in one of four named ways.

Every judge j perceives a response of latent quality q through its own error ``e = sd_j * z`` (z a stable standard
normal per judge, author and instruction) and scores ``1 + 9 * sigmoid(perceived)``. What it perceives depends on
its kind:

    honest      q + e
    noisy       q + unreliable_noise_factor * e                       (the same judge, much less sure)
    inverted    -(q + e)                                              (adversarial: scores 11 - the honest score)
    biased      style + e                                             (a surface feature, independent of q)
    colluding   q + e + collusion_boost * [author is the ally]       (favours one member, honest otherwise)

``style`` is a per-response latent ``style_spread * z'`` (z' a stable standard normal per author and instruction,
independent of quality), so biased judges agree with each other and with nobody else. The colluding judges share
one ally: a member that is not itself colluding (when there is one), picked by a stable hash of the run seed.

Which members judge unreliably is configured as a share per kind (``simulation.unreliable_judges``): kind k gets
``round(share_k * m)`` of the m members (halves round up), taken in a stable hashed order of the members that
does not depend on their skills; the others are honest. Only judging changes: an unreliable judge answers and
learns like any other member.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sparta.backends.simulated.draws import digest
from sparta.config import ConfigError
from sparta.registry import Registry

if TYPE_CHECKING:
    from sparta.config import SimulationConfig

HONEST = "honest"


@dataclass(frozen=True, kw_only=True)
class Perception:
    """What the judges of a batch see, one entry per judgment; ``style`` is filled only where a kind needs it."""

    quality: np.ndarray
    error: np.ndarray
    style: np.ndarray
    for_ally: np.ndarray


JudgeKind = Callable[[Perception, "SimulationConfig"], np.ndarray]
"""(what the judges see, the simulation settings) -> the perceived value whose sigmoid becomes the score."""

JUDGE_KINDS: Registry[JudgeKind] = Registry("simulated judge kind")


@JUDGE_KINDS.register(HONEST)
def honest(seen: Perception, sim: SimulationConfig) -> np.ndarray:
    return seen.quality + seen.error


@JUDGE_KINDS.register("noisy")
def noisy(seen: Perception, sim: SimulationConfig) -> np.ndarray:
    return seen.quality + sim.unreliable_noise_factor * seen.error


@JUDGE_KINDS.register("inverted")
def inverted(seen: Perception, sim: SimulationConfig) -> np.ndarray:
    return -(seen.quality + seen.error)


@JUDGE_KINDS.register("biased")
def biased(seen: Perception, sim: SimulationConfig) -> np.ndarray:
    return seen.style + seen.error


@JUDGE_KINDS.register("colluding")
def colluding(seen: Perception, sim: SimulationConfig) -> np.ndarray:
    return seen.quality + seen.error + sim.collusion_boost * seen.for_ally


NEEDS_STYLE = frozenset({"biased"})


def _stable_order(members: Sequence[str], seed: int, purpose: str) -> list[str]:
    return sorted(members, key=lambda member: digest(purpose, seed, member))


def assign_kinds(members: Sequence[str], shares: Mapping[str, float], seed: int) -> dict[str, str]:
    """Every member's judging kind: ``round(share * m)`` members per configured kind, the rest honest."""
    counts = {kind: math.floor(share * len(members) + 0.5) for kind, share in sorted(shares.items())}
    if sum(counts.values()) > len(members):
        raise ConfigError(
            f"simulation.unreliable_judges: {dict(shares)} asks for {sum(counts.values())} unreliable judges "
            f"among {len(members)} members; lower the shares"
        )
    order = iter(_stable_order(members, seed, "unreliable judge"))
    kinds = {member: HONEST for member in members}
    for kind, count in counts.items():
        for _ in range(count):
            kinds[next(order)] = kind
    return kinds


def pick_ally(members: Sequence[str], kinds: Mapping[str, str], seed: int) -> str | None:
    """The member the colluding judges favour: one that does not collude itself where possible; None without them."""
    if "colluding" not in kinds.values():
        return None
    candidates = [m for m in members if kinds[m] != "colluding"] or list(members)
    return _stable_order(candidates, seed, "ally")[0]
