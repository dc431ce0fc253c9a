import logging
import math

import numpy as np
import pytest
import torch

from isaaclab_pbt.core.objective import ObjectiveTracker, lookup, to_float


def test_dotted_path_with_slash_and_dotted_keys():
    infos = {"episode": {"Curriculum/adr": 0.3, "a.b": {"c": 2}}}
    assert lookup(infos, "episode.Curriculum/adr") == 0.3
    assert lookup(infos, "episode.a.b.c") == 2
    assert to_float(lookup(infos, "episode.Curriculum/difficulty_level")) is None
    assert to_float(lookup(infos, "episode.missing")) is None


@pytest.mark.parametrize(
    "value, expected",
    [
        (3, 3.0),
        (0.25, 0.25),
        (True, 1.0),
        (np.float32(0.5), 0.5),
        (np.array(0.75), 0.75),
        (torch.tensor(0.125), 0.125),
        (torch.tensor([1.0, 2.0, 3.0]), 2.0),
        (torch.tensor(7, dtype=torch.int64), 7.0),
        (float("nan"), None),
        (torch.tensor(float("inf")), None),
        (np.float64("nan"), None),
        ("0.5", None),
        (None, None),
        (torch.tensor([]), None),
    ],
)
def test_values_become_finite_floats(value, expected):
    assert to_float(value) == expected


def test_interval_mean_not_last_value_and_nan_ignored():
    t = ObjectiveTracker("episode.Curriculum/adr")
    for v in (0.0, 1.0, float("nan"), torch.tensor(0.5), 0.5):
        t.observe({"episode": {"Curriculum/adr": v}})
    assert t.value() == pytest.approx(0.5)
    last = ObjectiveTracker("episode.Curriculum/adr", reduce="last")
    best = ObjectiveTracker("episode.Curriculum/adr", reduce="max")
    for v in (0.2, 0.9, 0.1):
        last.observe({"episode": {"Curriculum/adr": v}})
        best.observe({"episode": {"Curriculum/adr": v}})
    assert last.value() == 0.1 and best.value() == 0.9
    t.reset()
    assert t.value() is None


def test_tensor_values_are_read_once_an_interval_not_at_every_step(monkeypatch):
    """Reading a CUDA tensor waits for the GPU: the tracker keeps the step values on their device until the interval ends."""
    reads = []
    for name in ("item", "tolist", "__float__"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, *a, _o=original, _n=name: reads.append(_n) or _o(self, *a))
    t = ObjectiveTracker("episode.x")
    steps = [torch.tensor([0.0, 1.0]), torch.tensor(2, dtype=torch.int64), torch.tensor(float("nan")), 0.5, torch.tensor(3.0)]
    for v in steps:
        t.observe({"episode": {"x": v}})
    assert reads == []
    assert t.value() == pytest.approx((0.5 + 2.0 + 0.5 + 3.0) / 4)  # the NaN step left out
    assert t.best() == 3.0
    assert reads == ["tolist"]  # all tensors of the interval in one read
    t.reset()
    t.observe({"episode": {"x": torch.tensor(1.0)}})
    assert t.value() == 1.0 and reads == ["tolist", "tolist"]


def test_missing_key_warns_once_with_the_keys_that_exist(caplog):
    t = ObjectiveTracker("episode.Curriculum/difficulty_level", warn_after=5)
    infos = {"episode": {"Curriculum/adr": 0.1, "Episode_Reward/success": torch.tensor(0.2)}, "time_outs": None}
    with caplog.at_level(logging.WARNING):
        for _ in range(20):
            t.observe(infos)
    warnings = [r.getMessage() for r in caplog.records if "not found" in r.getMessage()]
    assert len(warnings) == 1
    assert "episode.Curriculum/adr" in warnings[0] and "episode.Episode_Reward/success" in warnings[0]
    assert t.missing and t.value() is None


@pytest.mark.adversarial("hostile workspace cases survived")
def test_an_interval_near_the_float_limit_has_a_finite_mean():
    """Values whose sum overflows a float (two of 1.7e308) still have their mean: it lies between them."""
    t = ObjectiveTracker("episode.x")
    for v in (1.7e308, 1.6e308, math.inf, math.nan):
        t.observe({"episode": {"x": v}})
    assert t.value() == pytest.approx(1.65e308)
    assert t.best() == 1.7e308
