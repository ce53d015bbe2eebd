"""Stage timing and the cores' use reported by `evaluate --profile`."""

from __future__ import annotations

import time

import pytest
import torch

from memora_bench.timing import CoreUse


def test_core_use_counts_the_intervals_in_which_every_core_was_busy():
    use = CoreUse(cores=2, interval=0.25)
    use.record(1.0, 2.0)   # both cores all second
    use.record(1.0, 1.85)  # 92.5 % of both: counts as full
    use.record(2.0, 2.0)   # one core for two seconds
    use.record(1.0, 0.0)   # idle
    s = use.summary()
    assert s["wall_s"] == 5.0 and s["cpu_s"] == 5.85
    assert s["mean_cores_busy"] == pytest.approx(5.85 / 5.0)
    assert s["all_cores_busy_share"] == pytest.approx(2.0 / 5.0)


def test_core_use_with_no_samples_and_bad_arguments():
    assert CoreUse(cores=2).summary()["all_cores_busy_share"] == 0.0
    for bad in ({"cores": 0}, {"cores": 2, "interval": 0}, {"cores": 2, "full": 1.5}):
        with pytest.raises(ValueError):
            CoreUse(**bad)


def test_core_use_samples_a_sleeping_and_a_working_process():
    """Driven by the real clocks: a sleeping block keeps every core free, a busy loop on one thread fills about
    one core (never more than one: the sampler's own share is small)."""
    with CoreUse(cores=2, interval=0.05) as idle:
        time.sleep(0.6)
    s = idle.summary()
    assert s["wall_s"] == pytest.approx(0.6, abs=0.2) and s["mean_cores_busy"] < 0.2
    assert s["all_cores_busy_share"] == 0.0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a = torch.randn(256, 256)
        with CoreUse(cores=1, interval=0.05) as busy:
            end = time.perf_counter() + 0.8
            while time.perf_counter() < end:
                a = torch.tanh(a @ a)
    finally:
        torch.set_num_threads(threads)
    s = busy.summary()
    assert 0.3 < s["mean_cores_busy"] < 1.2, s  # one thread: at most one core (a loaded machine gives less)
    assert len(busy.samples) >= 10
