import random

from isaaclab_pbt.core.config import PbtCfg
from isaaclab_pbt.core.mutation import MUTATIONS, member_rng, mutate, mutate_discount, mutate_float, mutate_int

CR = (1.1, 2.0)


def test_float_multiplies_or_divides_within_change_range():
    ratios = [mutate_float(0.5, random.Random(s), CR) / 0.5 for s in range(400)]
    assert all(1.1 <= r <= 2.0 or 1 / 2.0 <= r <= 1 / 1.1 for r in ratios)
    assert any(r > 1 for r in ratios) and any(r < 1 for r in ratios)


def test_discount_perturbs_the_horizon_and_stays_below_one():
    for s in range(400):
        new = mutate_discount(0.99, random.Random(s), CR)
        ratio = (1 - new) / 0.01
        assert new < 1.0
        assert 1.1 - 1e-9 <= ratio <= 2.0 + 1e-9 or 0.5 - 1e-9 <= ratio <= 1 / 1.1 + 1e-9


def test_int_changes_by_at_least_one_and_bounds_keep_it_positive():
    values = [mutate_int(1, random.Random(s), (1.1, 1.2)) for s in range(100)]
    assert all(isinstance(v, int) and v != 1 for v in values)
    cfg = PbtCfg.from_dict({"mutation": {"agent.params.config.mini_epochs": "mutate_int"}})
    out = [mutate({"agent.params.config.mini_epochs": 1}, cfg.space(), 1.0, (1.1, 1.2), random.Random(s))
           for s in range(100)]
    assert {o["agent.params.config.mini_epochs"] for o in out} == {1, 2}


def test_clip_respects_default_and_user_bounds():
    key = "agent.params.config.e_clip"
    cfg = PbtCfg.from_dict({"mutation": {key: "mutate_clip"}})
    values = [mutate({key: 0.45}, cfg.space(), 1.0, (1.5, 3.0), random.Random(s))[key] for s in range(200)]
    assert max(values) == 0.5 and min(values) >= 0.05
    cfg = PbtCfg.from_dict({"mutation": {key: "mutate_clip"}, "bounds": {key: [0.15, 0.25]}})
    values = [mutate({key: 0.2}, cfg.space(), 1.0, (1.5, 3.0), random.Random(s))[key] for s in range(200)]
    assert min(values) == 0.15 and max(values) == 0.25


def test_rate_selects_keys_and_only_whitelisted_keys_change():
    cfg = PbtCfg()
    values = {k: 0.5 for k in cfg.mutation} | {"agent.params.config.horizon_length": 32}
    assert mutate(values, cfg.space(), 0.0, CR, random.Random(0)) == values
    every = mutate(values, cfg.space(), 1.0, CR, random.Random(0))
    assert all(every[k] != 0.5 for k in cfg.mutation)
    assert every["agent.params.config.horizon_length"] == 32
    changed = sum(
        mutate(values, cfg.space(), 0.25, CR, random.Random(s))[k] != 0.5
        for s in range(500) for k in cfg.mutation
    )
    assert 0.2 < changed / (500 * len(cfg.mutation)) < 0.3


def test_member_rng_is_reproducible_but_never_replays_after_a_restart():
    draws = lambda seed, idx, it: [member_rng(seed, idx, it).random() for _ in range(3)]
    assert draws(42, 1, 7) == draws(42, 1, 7)
    assert draws(42, 1, 7) != draws(42, 1, 8)
    assert draws(42, 1, 7) != draws(42, 2, 7)


def test_registry_names():
    assert {"mutate_float", "mutate_discount", "mutate_int", "mutate_clip"} <= set(MUTATIONS)
