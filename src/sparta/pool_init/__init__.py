"""``sparta init-pool``: a diverse pool from one base model, each member SFT'd on its own subset, plus measures
of how much the members differ.

    from sparta.pool_init import init_pool, diversity_rows
    result = init_pool(Path("configs/pool-demo.yaml"), Path("pools/demo"))
    # then: sparta run pools/demo/pool.yaml --out runs/from-experts
"""

from sparta.pool_init.config import InitPoolConfig, load_init_config
from sparta.pool_init.diversity import diversity_from_answers, diversity_rows, measure_diversity
from sparta.pool_init.init_pool import InitPoolError, InitPoolResult, init_pool, run_config

__all__ = [
    "InitPoolConfig",
    "InitPoolError",
    "InitPoolResult",
    "diversity_from_answers",
    "diversity_rows",
    "init_pool",
    "load_init_config",
    "measure_diversity",
    "run_config",
]
