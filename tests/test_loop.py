"""The shared training loop: weight averaging over the tail of training, and resuming with it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from accelerate import Accelerator

from edgerank.data import QueryGroup
from edgerank.train.loop import LoopConfig, train


def _groups(n: int = 24) -> list[QueryGroup]:
    return [QueryGroup(f"q{i}", f"query {i}", ("a", "b"), ("x", "y"), np.array([1.0, 0.0]), np.array([0, 1]))
            for i in range(n)]


def _run(config: LoopConfig, tmp_path, seen: list | None = None, stop_at: int | None = None
         ) -> tuple[torch.nn.Module, dict]:
    """A 4x1 linear scorer pulled towards a target; ``seen`` collects the weights each step starts from;
    ``stop_at`` interrupts the run (Ctrl-C) when that many steps have started."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    target = torch.tensor([[1.0, -2.0, 3.0, 0.5]])

    calls = []

    def step(m, batch):
        calls.append(1)
        if len(calls) == stop_at:
            raise KeyboardInterrupt
        if seen is not None:
            seen.append(m.weight.detach().clone())
        x = torch.randn(len(batch), 4)
        return ((m(x) - x @ target.T) ** 2).mean()

    stats = train(model, _groups(), step, config, tmp_path / "work", Accelerator(cpu=True))
    return model, stats


def test_average_from_keeps_the_mean_of_the_tail_weights(tmp_path):
    config = dict(epochs=2, batch_size=4, lr=0.05, warmup=0.0, checkpoint_every=1000)
    seen: list[torch.Tensor] = []
    last, plain = _run(LoopConfig(**config), tmp_path / "plain", seen)
    assert "averaged_steps" not in plain
    assert plain["steps"] == 24  # 24 queries of 2 pairs, two per batch, two epochs
    averaged, stats = _run(LoopConfig(**config, average_from=0.5), tmp_path / "avg")
    # the weights after steps 13..24: those steps 14..24 started from, and the final ones
    tail = seen[13:] + [last.weight.detach()]
    assert stats["averaged_steps"] == len(tail) == 12
    torch.testing.assert_close(averaged.weight.detach(), torch.stack(tail).mean(0))
    assert not torch.allclose(averaged.weight, last.weight)


def test_average_from_must_be_a_fraction(tmp_path):
    with pytest.raises(ValueError, match=r"average_from must be in \[0, 1\)"):
        _run(LoopConfig(epochs=1, batch_size=4, average_from=1.0), tmp_path)


def test_an_interrupted_averaging_run_resumes_with_its_running_mean(tmp_path):
    config = LoopConfig(epochs=2, batch_size=4, lr=0.05, warmup=0.0, checkpoint_every=4, average_from=0.25)
    unbroken, _ = _run(config, tmp_path / "unbroken")
    with pytest.raises(KeyboardInterrupt):  # during step 19, after the checkpoint of step 16
        _run(config, tmp_path / "broken", stop_at=19)
    resumed, stats = _run(config, tmp_path / "broken")
    assert stats["resumed_from"] == 16 and stats["averaged_steps"] == 18
    torch.testing.assert_close(resumed.weight, unbroken.weight)
