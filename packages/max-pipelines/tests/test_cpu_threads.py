"""Thread counts of CPU steps: all threads for large steps, the measured fastest arm for small ones."""

import torch
from max_pipelines.engine import cpu_threads
from max_pipelines.engine.cpu_threads import StepThreads


class FakeClock:
    """Each step takes as long as `cost(forward threads, LM head threads)` says."""

    def __init__(self, cost):
        self.now, self.cost, self.threads = 0.0, cost, None

    def __call__(self):
        return self.now

    def run_step(self, st: StepThreads):
        st.enter(1)
        forward = torch.get_num_threads()
        st.enter_logits()
        self.now += self.cost(forward, torch.get_num_threads())
        st.leave()
        return forward


def test_small_steps_settle_on_the_fastest_arm_and_follow_a_change(monkeypatch):
    saved = torch.get_num_threads()
    try:
        clock = FakeClock(lambda f, lg: 0.005 if (f, lg) == (2, 2) else 0.010)
        monkeypatch.setattr(cpu_threads.time, "perf_counter", clock)
        st = StepThreads(2)
        for _ in range(20):
            clock.run_step(st)
        assert (st.best().forward, st.best().logits) == (2, 2)
        assert [clock.run_step(st) for _ in range(5)] == [2] * 5

        clock.cost = lambda f, lg: 0.050 if f == 2 else (0.010 if lg == 2 else 0.008)  # another process came
        forwards = [clock.run_step(st) for _ in range(200)]
        assert (st.best().forward, st.best().logits) == (1, 1)
        assert forwards[-60:].count(2) <= 3  # losing arms are retried rarely
    finally:
        torch.set_num_threads(saved)


def test_large_steps_use_every_thread():
    saved = torch.get_num_threads()
    try:
        st = StepThreads(2)
        st.enter(1)
        st.enter(64)
        assert torch.get_num_threads() == 2
        st.enter_logits()
        assert torch.get_num_threads() == 2
        st.leave()
        one = StepThreads(1)
        one.enter(1)
        assert torch.get_num_threads() == 1 and len(one.arms) == 1
    finally:
        torch.set_num_threads(saved)


def test_many_cores_also_try_half_of_them(monkeypatch):
    saved = torch.get_num_threads()
    try:
        clock = FakeClock(lambda f, lg: 0.004 if f == 4 else 0.010)
        monkeypatch.setattr(cpu_threads.time, "perf_counter", clock)
        st = StepThreads(8)
        assert (4, 8) in [(a.forward, a.logits) for a in st.arms]
        for _ in range(20):
            clock.run_step(st)
        assert st.best().forward == 4
    finally:
        torch.set_num_threads(saved)
