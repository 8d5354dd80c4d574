"""Configuration: authors' defaults, YAML + overrides, and errors that name the field."""

import pytest

from sparta.config import ConfigError, SpartaConfig, dump_config, load_config


def test_defaults_are_the_authors():
    t = SpartaConfig().tournament
    assert (t.initial_rating, t.initial_sigma, t.kappa0, t.kappa_min, t.decay, t.decay_steps) == (
        100,
        0.5,
        10,
        5,
        0.9,
        10,
    )
    assert (t.eps, t.window, t.sigma_min, t.scale, t.rating_floor, t.alpha, t.k) == (0.01, 10, 0.1, 20, 10, 0.6, 5)
    assert SpartaConfig().training.beta == 0.1


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("run:\n  rounds: 3\ntournament:\n  alpha: 0.5\n")
    cfg = load_config(path, ["tournament.alpha=0.2", "training.lora.r=4", "pool.long_prompt=skip"])
    assert cfg.run.rounds == 3 and cfg.tournament.alpha == 0.2 and cfg.training.lora.r == 4
    assert cfg.pool.long_prompt == "skip"
    assert load_config(path) != cfg


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(None, ["tournament.k=3", "run.seed=9"])
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg


@pytest.mark.parametrize(
    "override, expected",
    [
        ("tournament.alpha=1.5", r"tournament\.alpha.*less than or equal to 1"),
        ("tournament.k=0", r"tournament\.k.*greater than or equal to 1"),
        ("tournament.aggregation=median", r"tournament\.aggregation"),
        ("tournament.kappa_min=20", r"kappa_min"),
        ("tournament.nonsense=1", r"tournament\.nonsense.*Extra inputs"),
        ("training.beta=-1", r"training\.beta.*greater than 0"),
    ],
)
def test_bad_values_name_the_field_and_range(override, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(None, [override])


@pytest.mark.parametrize(
    "override, expected",
    [
        ("backend.kind=hff", r"backend\.kind.*unknown.*'hff'.*did you mean 'hf'"),
        ("backend.placement=rey", r"backend\.placement.*did you mean 'ray'"),
        ("data.task=procedurall", r"data\.task.*did you mean 'procedural'"),
        ("tournament.update_rule=papr", r"tournament\.update_rule.*did you mean 'paper'"),
        ("tournament.aggregation=dawid_skeen", r"tournament\.aggregation.*did you mean 'dawid_skene'"),
        ("tournament.judges=externall", r"tournament\.judges.*did you mean 'external'"),
        ("judge.type=generat", r"judge\.type.*did you mean 'generate'"),
    ],
)
def test_a_misspelt_registry_name_fails_when_the_config_loads_with_the_near_name(override, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(None, [override])


def test_bad_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("run:\n  rounds: 3\n  seed: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+"):
        load_config(path)


def test_missing_file_and_bad_override():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("/nonexistent/c.yaml")
    with pytest.raises(ConfigError, match="section.field=value"):
        load_config(None, ["alpha"])


def test_two_members_need_all_judges():
    members = ["pool.members=[{name: a, model: x}, {name: b, model: x}]"]
    with pytest.raises(ConfigError, match="judges=all"):
        load_config(None, members)
    assert len(load_config(None, members + ["tournament.judges=all"]).pool.members) == 2


def test_extends_merges_sections_but_replaces_task_options(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "run: {rounds: 3, seed: 1}\ndata:\n  task: mixture\n  options: {parts: [{task: procedural}]}\n"
    )
    (tmp_path / "child.yaml").write_text(
        "extends: base.yaml\nrun: {rounds: 5}\ndata:\n  task: procedural\n  options: {size: 50}\n"
    )
    cfg = load_config(tmp_path / "child.yaml")
    assert (cfg.run.rounds, cfg.run.seed) == (5, 1)
    assert cfg.data.task == "procedural" and cfg.data.options == {"size": 50}
    (tmp_path / "loop.yaml").write_text("extends: loop.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "loop.yaml")


def test_training_max_length_fits_every_answered_prompt_by_default():
    assert load_config(None).training.max_length == 1024 + 128 + 8
    members = [{"name": "a", "model": "m", "sampling": {"max_new_tokens": 300}}, {"name": "b", "model": "m"}]
    cfg = SpartaConfig.model_validate(
        {"pool": {"members": members, "max_prompt_tokens": 200}, "tournament": {"judges": "all"}}
    )
    assert cfg.training.max_length == 200 + 300 + 8  # the longest answer any member may write
    assert load_config(None, ["training.max_length=1152"]).training.max_length == 1152


def test_a_training_max_length_that_drops_answered_prompts_names_both_fields():
    with pytest.raises(ConfigError) as caught:
        load_config(None, ["training.max_length=512"])
    message = str(caught.value)
    assert "training.max_length (512)" in message and "pool.max_prompt_tokens (1024)" in message
    assert "at least 1152" in message


def test_truncated_answers_policy():
    assert SpartaConfig().tournament.truncated == "drop"
    assert load_config(None, ["tournament.truncated=keep"]).tournament.truncated == "keep"
    with pytest.raises(ConfigError, match="tournament.truncated"):
        load_config(None, ["tournament.truncated=cut"])


def test_every_configuration_field_says_what_it_does():
    """TRL-style: each field's description gives its effect (and unit, direction, the default's source)."""
    from pydantic import BaseModel

    import sparta.config
    import sparta.pool_init.config

    missing, seen = [], 0
    for module in (sparta.config, sparta.pool_init.config):
        for name, model in vars(module).items():
            if isinstance(model, type) and issubclass(model, BaseModel) and model.__module__ == module.__name__:
                for field_name, field in model.model_fields.items():
                    seen += 1
                    if not (field.description or "").strip():
                        missing.append(f"{name}.{field_name}")
    assert seen > 100
    assert missing == []
