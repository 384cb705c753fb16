"""Run-time estimate, ETA and the 'stopped before the recipe' line."""

from __future__ import annotations

from synthmed.training.progress import RunClock, format_duration, log_line, short_of_recipe


def test_estimate_comes_once_after_the_warmup_steps_and_skips_the_first():
    clock = RunClock(start=0, total=2000, warmup=5)
    assert clock.tick(1, now=100.0) is None  # first step: allocation, not timed
    assert [clock.tick(s, now=100.0 + 0.93 * (s - 1)) for s in range(2, 6)] == [None] * 4
    note = clock.tick(6, now=100.0 + 0.93 * 5)
    assert note.startswith("estimate: 2,000 steps ≈ 31 min on this machine")
    assert clock.tick(7, now=200.0) is None
    assert abs(clock.eta(1000, now=100.0 + 0.93 * 999) - 0.93 * 1000) < 1e-6


def test_resumed_runs_estimate_the_remaining_steps():
    clock = RunClock(start=1500, total=2000, warmup=2)
    clock.tick(1501, now=0.0)
    clock.tick(1502, now=1.0)
    assert "500 steps" in clock.tick(1503, now=2.0)


def test_format_duration():
    assert [format_duration(s) for s in (12, 1860, 7500)] == ["12 s", "31 min", "2 h 05 min"]


def test_log_line_has_the_eta_even_without_a_progress_bar():
    rec = {"step": 50, "loss_d": 1.2, "loss_g": 0.7, "img_per_s": 61.0, "aug_p": 0.1}
    assert log_line(rec, 2000, 1860).endswith("ETA 31 min")
    assert "ETA -" in log_line({**rec, "aug_p": None}, 2000, None)


def test_short_of_recipe():
    assert short_of_recipe("dcgan", 114, 64) == ("stopped at step 114; this recipe (dcgan) needs "
                                                 "~2,000 steps for usable samples at 64 px "
                                                 "(docs/training.md)")
    assert short_of_recipe("dcgan", 2000, 64) is None
    assert short_of_recipe("not-a-model", 1, 64) is None
    assert "(ddpm) needs ~500 steps for usable samples at 32 px" in short_of_recipe("ddpm", 50, 32)
    assert short_of_recipe("ddpm", 50, 64) is None  # measured at 32 px only


def test_open_ended_runs_get_a_per_1000_steps_estimate():
    """A huge train.steps used as 'train until stopped' (benchmarks/generators.py) gets the time
    per 1,000 steps, not a meaningless whole-run figure."""
    clock = RunClock(start=0, total=100_000_000, warmup=2)
    clock.tick(1, now=0.0)
    clock.tick(2, now=0.0773)
    note = clock.tick(3, now=2 * 0.0773)
    assert note.startswith("estimate: 1,000 steps ≈ 77 s on this machine"), note
    assert "100,000,000 planned steps would take 89 days" in note
    short = RunClock(start=0, total=2000, warmup=2)
    short.tick(1, now=0.0), short.tick(2, now=1.0)
    assert short.tick(3, now=2.0).startswith("estimate: 2,000 steps ≈ 33 min")


def test_format_duration_in_days_beyond_two_days():
    assert format_duration(89 * 86400) == "89 days"
    assert format_duration(47 * 3600) == "47 h 00 min"


def test_the_estimate_synchronises_the_device_only_when_it_reads_the_clock():
    """On a GPU the step returns before its kernels run: the clock is read after a device
    synchronisation, at the first step and at the estimate only (not a host sync per step)."""
    calls = []
    clock = RunClock(start=0, total=2000, warmup=3, sync=lambda: calls.append(1))
    notes = [clock.tick(step) for step in range(1, 11)]
    assert sum(n is not None for n in notes) == 1
    assert len(calls) == 2, "first step and the estimate"
    clock.eta(10)
    assert len(calls) == 3
