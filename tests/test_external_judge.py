"""tournament.judges=external: one fixed judge outside the pool, configured by judge.external."""

from __future__ import annotations

import pytest

from sparta.backends.base import outside_judges
from sparta.config import ConfigError, config_from_dict
from sparta.records import Instruction, Match
from sparta.tournament import judges_for
from sparta.tournament.panels import EXTERNAL_JUDGE, PANELS

MEMBERS = [{"name": n, "model": "tiny-llama"} for n in ("ann", "ben", "cy")]
EXTERNAL = ["tournament.judges=external", "tournament.aggregation=uniform"]


def config(overrides: list[str], members: list[dict] | None = None):
    return config_from_dict({"pool": {"members": members or MEMBERS}}, "test", overrides)


def test_each_panel_names_its_judges():
    match = Match(0, Instruction("i", "x"), "ann", "ben")
    members = ["ann", "ben", "cy", "dee"]
    assert judges_for(match, members, "others") == ["cy", "dee"]
    assert judges_for(match, members, "all") == members
    assert judges_for(match, members, "external") == [EXTERNAL_JUDGE]
    assert sorted(PANELS.names()) == ["all", "external", "others"]


def test_the_external_judge_defaults_to_the_pools_base_model():
    (judge,) = outside_judges(config(EXTERNAL))
    assert (judge.name, judge.model, judge.adapter, judge.system_prompt) == (EXTERNAL_JUDGE, "tiny-llama", None, None)
    custom = config([*EXTERNAL, "judge.external={model: tiny-llama-1, adapter: /a, system_prompt: Be strict.}"])
    (judge,) = outside_judges(custom)
    assert (judge.model, judge.adapter, judge.system_prompt) == ("tiny-llama-1", "/a", "Be strict.")
    assert outside_judges(config([])) == []  # the members judge: nothing to load


def test_an_outside_judge_needs_uniform_aggregation_the_hf_backend_and_its_own_name():
    with pytest.raises(ConfigError, match="no reputation to weight its scores by; set tournament.aggregation=uniform"):
        config(["tournament.judges=external"])
    with pytest.raises(ConfigError, match="needs backend.kind=hf"):
        config([*EXTERNAL, "backend.kind=simulated"])
    with pytest.raises(ConfigError, match="runs on the hf engine only"):
        config([*EXTERNAL, "pool.engine=vllm"])
    with pytest.raises(ConfigError, match="is the name of the outside judge"):
        config(EXTERNAL, [*MEMBERS, {"name": EXTERNAL_JUDGE, "model": "tiny-llama"}])
    with pytest.raises(ConfigError, match="did you mean 'external'"):
        config(["tournament.judges=externa"])
    with pytest.raises(ConfigError, match="training.loss_type"):
        config(["training.loss_type=sppo"])
