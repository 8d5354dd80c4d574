"""The DPO step's output head on a CPU: TRL's fused kernel against ours with the softmax kept (``answer_head``).

For each row count (answer tokens of one optimizer step), forward and backward of each on random states through the
model's own head, as a DPO step runs them (log-probabilities with entropy, mean logit and top-1 flag; the gradient
of the states). Best of ``--reps`` after a warm-up.

    python benchmarks/answer_head.py                      # SmolLM2, 384 and 1024 rows
    python benchmarks/answer_head.py --model tiny-llama --rows 16 64   # smoke test
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sparta.cpu_threads import prepare_cpu_threads  # noqa: E402

THREADS = prepare_cpu_threads().describe()

import torch  # noqa: E402
from trl.kernels import ChunkedLogProbFunction  # noqa: E402

from mixed_batches import member_pool  # noqa: E402
from sparta.backends.hf.answer_head import VOCAB_TILE, KeptProbabilities  # noqa: E402
from sparta.backends.hf.precision import best_seconds  # noqa: E402

OUTPUTS = ("log_probs", "entropy", "mean_logits", "is_top1")
"""What TRL's DPO trainer asks its fused head for."""


def _step(kernel: str, states: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> None:
    if kernel == "kept":
        values = KeptProbabilities.apply(states, weight, targets, OUTPUTS)
    else:
        values = ChunkedLogProbFunction.apply(states, weight, None, targets, 1.0, VOCAB_TILE, None, 1.0, OUTPUTS)
    values[0].sum().backward()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--rows", type=int, nargs="+", default=[384, 1024])
    parser.add_argument("--reps", type=int, default=4)
    args = parser.parse_args(argv)
    weight = member_pool(args.model, 1, 8).bases()[0][1].get_output_embeddings().weight.detach()
    print(f"{args.model}: head {tuple(weight.shape)}, {THREADS}")
    generator = torch.Generator().manual_seed(0)
    for rows in args.rows:
        states = torch.randn(rows, weight.shape[1], generator=generator).requires_grad_()
        targets = torch.randint(0, weight.shape[0], (rows,), generator=generator)
        seconds = {}
        for kernel in ("trl", "kept"):
            run = lambda k=kernel, s=states, t=targets: _step(k, s, weight, t)  # noqa: E731
            seconds[kernel] = best_seconds(run, weight.device, repeats=args.reps)
        trl, kept = seconds["trl"], seconds["kept"]
        print(f"{rows:5d} rows: TRL's kernel {trl:.3f} s, kept softmax {kept:.3f} s ({trl / kept:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
