"""The one learning-rate schedule of the codec and LM trainers."""

import pytest

from wavtokenizer_hf.schedule import warmup_cosine


def test_warm_up_rises_linearly_then_the_cosine_reaches_its_floor_at_max_steps():
    assert warmup_cosine(0, 10, 110, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(4, 10, 110, 0.1) == pytest.approx(0.5)
    assert warmup_cosine(10, 10, 110, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(60, 10, 110, 0.1) == pytest.approx(0.55)  # half way: the mean of peak and floor
    assert warmup_cosine(110, 10, 110, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(500, 10, 110, 0.1) == pytest.approx(0.1)


def test_the_time_limit_decays_the_rate_when_it_comes_before_max_steps():
    assert warmup_cosine(20, 10, 10_000, 0.1, time_fraction=0.5) == pytest.approx(0.55)
    assert warmup_cosine(20, 10, 10_000, 0.1, time_fraction=1.0) == pytest.approx(0.1)
    assert warmup_cosine(5, 10, 10_000, 0.1, time_fraction=1.0) == pytest.approx(0.1)  # even inside the warm-up
    assert warmup_cosine(9_000, 10, 10_000, 0.1, time_fraction=0.01) < 0.2  # steps first: steps decide
