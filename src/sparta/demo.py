"""``sparta demo``: SPARTA on four SmolLM2-135M-Instruct members, end to end on a CPU.

Before the run, a short judge-check measures every judge type on the model with probes whose better response
is known, and the run uses the most accurate one (small models judge poorly when asked for a score).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sparta.config import SpartaConfig, config_from_dict, load_config

JUDGE_TYPES = ("generate", "logprob", "likelihood")


def demo_config(overrides: list[str] | None = None) -> SpartaConfig:
    text = resources.files("sparta").joinpath("configs/demo.yaml").read_text()
    return config_from_dict(yaml.safe_load(text), "sparta/configs/demo.yaml", overrides)


def check_judges(config: SpartaConfig, n_per_kind: int, progress: Any = None) -> list[dict[str, Any]]:
    """judge-check on one member per distinct model of the pool (the judge type is a property of the model)."""
    from sparta.backends.hf.pool import ModelPool
    from sparta.backends.hf.probes import judge_check

    seen: dict[str, Any] = {}
    for m in config.pool.members:
        seen.setdefault(m.model, m)
    probe_pool = config.pool.model_copy(update={"members": list(seen.values())})
    pool = ModelPool(probe_pool, config.training.lora, config.run.seed)
    return judge_check(pool, list(JUDGE_TYPES), config.judge, n_per_kind, config.run.seed, progress or (lambda n: None))


def resumed_judge_type(out: Path) -> str | None:
    """The judge type an existing demo run directory was started with: a resumed run must keep it."""
    path = out / "config.yaml"
    return load_config(path).judge.type if path.exists() else None
