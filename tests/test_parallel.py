"""Jobs with follow-ups side by side (models.parallel.side_by_side_chained), as MemoRa's seeds use them."""

import threading

import torch

from memora_bench.models.parallel import side_by_side_chained


def _with_threads(n, fn):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


def test_results_come_in_job_order_with_their_follow_ups_in_order():
    jobs = [lambda i=i: (i, [lambda i=i, j=j: (i, j, torch.get_num_threads()) for j in range(3)]) for i in range(4)]
    for threads in (1, 2):
        out = _with_threads(threads, lambda: side_by_side_chained(jobs))
        assert [v for v, _ in out] == [0, 1, 2, 3]
        assert [f for _, f in out] == [[(i, j, 1) for j in range(3)] for i in range(4)]  # each on one thread


def test_a_done_jobs_follow_ups_run_while_the_last_job_still_runs():
    """Three jobs on two threads: the third waits for the first job's follow-up. With follow-ups held back until
    every job is done (the one-thread-idle layout this replaces) it would wait in vain."""
    followed = threading.Event()

    def first():
        return "a", [followed.set]

    def last():
        assert followed.wait(timeout=20), "the first job's follow-up did not run beside the last job"
        return "c", []

    out = _with_threads(2, lambda: side_by_side_chained([first, lambda: ("b", []), last]))
    assert [v for v, _ in out] == ["a", "b", "c"] and out[0][1] == [None]
