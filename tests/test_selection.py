import random
import statistics

import pytest

from isaaclab_pbt.core.config import PbtCfg
from isaaclab_pbt.core.decision import decide
from isaaclab_pbt.core.selection import choose_donor, rank
from isaaclab_pbt.core.workspace import Record


def test_cuts_follow_the_formula():
    objectives = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 4: 10.0}
    r = rank(objectives, threshold_std=0.5, threshold_abs=0.1)
    mu, sigma = 4.0, statistics.pstdev([1, 2, 3, 4, 10])
    assert r.mean == pytest.approx(mu) and r.std == pytest.approx(sigma)
    assert r.upper_cut == pytest.approx(max(mu + 0.5 * sigma, mu + 0.1))
    assert r.lower_cut == pytest.approx(min(mu - 0.5 * sigma, mu - 0.1))
    assert r.leaders == (4,)
    assert r.underperformers == (0, 1)


def test_the_worked_example_of_the_docs():
    r = rank({0: 0.20, 1: 0.45, 2: 0.50, 3: 0.55, 4: 0.80}, threshold_std=0.1, threshold_abs=0.025)
    assert r.mean == pytest.approx(0.5) and r.std == pytest.approx(0.1924, abs=1e-4)
    assert r.upper_cut == pytest.approx(0.525) and r.lower_cut == pytest.approx(0.475)
    assert r.leaders == (3, 4) and r.underperformers == (0, 1)


def test_absolute_threshold_wins_when_std_is_small():
    r = rank({0: 0.50, 1: 0.51, 2: 0.60}, threshold_std=0.1, threshold_abs=0.025)
    assert r.upper_cut == pytest.approx(r.mean + 0.025)
    assert r.leaders == (2,) and r.underperformers == (0, 1)


def test_uninitialized_members_do_not_move_the_cuts():
    with_none = rank({0: 1.0, 1: 3.0, 2: None, 3: None}, 0.1, 0.025)
    without = rank({0: 1.0, 1: 3.0}, 0.1, 0.025)
    assert with_none == without


def test_ties_and_zero_std_give_neither_leaders_nor_underperformers():
    r = rank({0: 0.7, 1: 0.7, 2: 0.7}, 0.1, 0.0)
    assert r.std == 0 and r.leaders == () and r.underperformers == ()


def test_value_exactly_on_a_cut_is_neither():
    r = rank({0: 0.0, 1: 1.0}, threshold_std=1.0, threshold_abs=0.0)  # mu=0.5, sigma=0.5: cuts 0 and 1
    assert r.leaders == () and r.underperformers == ()


def test_one_member_and_none_initialized():
    assert rank({3: 0.4}, 0.1, 0.025).underperformers == ()
    assert rank({0: None, 1: None}, 0.1, 0.025) is None


def test_donor_is_a_random_leader_or_self():
    r = rank({0: 0.0, 1: 0.1, 2: 1.0, 3: 1.0}, 0.1, 0.025)
    assert r.leaders == (2, 3)
    donors = {choose_donor(0, r, random.Random(s)) for s in range(50)}
    assert donors == {2, 3}
    lonely = rank({0: 0.0, 1: 0.5, 2: 0.55}, 1.0, 0.0)
    assert lonely.leaders == () and 0 in lonely.underperformers
    assert choose_donor(0, lonely, random.Random(0)) == 0


def _rec(idx, objective, frame=1000, t=1000.0, **hp):
    hp = hp or {"agent.params.config.learning_rate": 1e-3 * (idx + 1)}
    return Record(idx, frame // 100, frame, objective, hp, time=t, pid=1, host="h")


CFG = PbtCfg.from_dict({"enabled": True, "num_policies": 4, "policy_idx": 0, "mutation_rate": 1.0,
                        "mutation": {"agent.params.config.learning_rate": "mutate_float"}, "min_initialized": 2})


def test_underperformer_takes_a_leader_and_mutates_its_values():
    own = _rec(0, 0.1)
    records = {1: _rec(1, 0.5), 2: _rec(2, 0.9), 3: _rec(3, 0.5)}
    decision, reason = decide(CFG, own, records, now=1000.0, burn_in_until=0, rng=random.Random(1))
    assert decision is not None and decision.donor == 2
    new = decision.hyperparameters["agent.params.config.learning_rate"]
    assert new != pytest.approx(3e-3) and 3e-3 / 2.0 <= new <= 3e-3 * 2.0
    assert decision.changed["agent.params.config.learning_rate"] == (1e-3, new)


def test_no_action_for_leaders_in_burn_in_or_without_enough_members():
    records = {1: _rec(1, 0.5), 2: _rec(2, 0.9)}
    assert decide(CFG, _rec(0, 0.95), records, 1000.0, 0, random.Random(0))[0] is None
    d, reason = decide(CFG, _rec(0, 0.1), records, 1000.0, burn_in_until=5000, rng=random.Random(0))
    assert d is None and "burn-in" in reason
    d, reason = decide(CFG, _rec(0, 0.1), {1: _rec(1, None)}, 1000.0, 0, random.Random(0))
    assert d is None and "min_initialized=2" in reason
    d, reason = decide(CFG, _rec(0, None), records, 1000.0, 0, random.Random(0))
    assert d is None and "no objective" in reason


def test_stale_and_foreign_members_are_left_out():
    records = {1: _rec(1, 0.9, t=0.0), 2: _rec(2, 0.2), 7: _rec(7, 5.0)}
    decision, reason = decide(CFG, _rec(0, 0.1), records, now=CFG.member_timeout_s + 10, burn_in_until=0, rng=random.Random(0))
    # member 1 is stale and 7 is outside num_policies: only 0 and 2 are ranked
    assert decision.ranking.mean == pytest.approx(0.15)
    assert decision.donor == 2 and decision.ranking.leaders == (2,)
