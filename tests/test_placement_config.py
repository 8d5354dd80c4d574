"""``backend.placement`` and the ``ray`` section: checked when the configuration loads, free to change on resume."""

from pathlib import Path

import pytest

from sparta.config import ConfigError, dump_config, load_config
from sparta.pipeline.loop import RoundLoop
from sparta.rundir import CONFIG_YAML, RunDirectoryError

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


def test_two_ray_workers_need_nothing_but_the_two_overrides():
    config = load_config(TINY, ["backend.placement=ray", "ray.workers=2"])
    assert config.backend.placement == "ray" and config.ray.workers == 2
    assert config.ray.address is None and config.ray.cpus_per_worker == 1 and config.ray.gpus_per_worker == 0
    assert load_config(TINY).backend.placement == "local"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["backend.placement=rey"], "unknown placement 'rey' (did you mean 'ray'?)"),
        (["backend.placement=ray", "backend.kind=simulated"], "use backend.placement=local"),
        (["backend.placement=ray", "pool.device=cuda"], "pool.device='cuda' and ray.gpus_per_worker=0.0 disagree"),
        (["backend.placement=ray", "ray.gpus_per_worker=0.5"], "pool.device='cpu' and ray.gpus_per_worker=0.5"),
        (["ray.gpus_per_worker=2"], "ray.gpus_per_worker: Input should be less than or equal to 1"),
        (["ray.workers=0"], "ray.workers: Input should be greater than or equal to 1"),
        (["ray.address=headnode"], "ray.address: expected none, 'auto', HOST:PORT or ray://HOST:PORT"),
    ],
)
def test_bad_placements_name_the_fields(overrides, expected):
    with pytest.raises(ConfigError) as caught:
        load_config(TINY, overrides)
    assert expected in str(caught.value)


def test_half_a_gpu_per_worker_on_cuda_is_valid():
    config = load_config(TINY, ["backend.placement=ray", "pool.device=cuda", "ray.gpus_per_worker=0.5"])
    assert config.ray.gpus_per_worker == 0.5


def test_a_run_may_change_its_placement_but_not_what_it_computes(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / CONFIG_YAML).write_text(dump_config(load_config(TINY)))
    on_ray = load_config(TINY, ["backend.placement=ray", "ray.workers=3", "ray.address=auto"])
    RoundLoop(on_ray, out, tribe=None).open()  # no tribe is needed before a round is restored
    assert load_config(out / CONFIG_YAML).backend.placement == "ray"
    with pytest.raises(RunDirectoryError, match=r"differs in run\.seed"):
        RoundLoop(load_config(TINY, ["backend.placement=ray", "run.seed=1"]), out, tribe=None).open()


def test_every_placement_places_both_engines():
    from sparta.backends.base import LEARNERS, PLACEMENTS

    assert PLACEMENTS.names() == LEARNERS.names() == ["local", "ray"]
    config = load_config(TINY, ["backend.placement=ray", "pool.engine=vllm"])  # the servers answer, Ray trains
    assert config.backend.placement == "ray" and config.pool.engine == "vllm"
