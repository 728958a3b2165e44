"""Circuit breakers (seed 000 §7.5), the recovery protocol (§7.6) and drawdown adaptation.

Numbers are compared with an absolute tolerance of 1e-12 unless a test says otherwise. The property tests
replay random observation sequences against an independent model of the protocol (:class:`Auditor`).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from mqf_pipeline.risk.breakers import (
    BreakerParams,
    BreakerState,
    RiskObservation,
    Status,
    blocks_new_risk,
    drawdown,
    drawdown_multiplier,
    sizing_multiplier,
    step,
)

TOL = 1e-12
P = BreakerParams()
CALM = RiskObservation(var=0.01, vol_ann=0.08, drawdown=0.05)
TIER3 = RiskObservation(var=0.05, vol_ann=0.25, drawdown=0.20)
#: Small, fast protocol so random sequences reach every phase.
FAST = BreakerParams(cooldown_sessions=3, recovery_steps=(0.3, 0.6, 1.0), recovery_step_sessions=2)


def run(obs: list[RiskObservation], state: BreakerState | None = None, params: BreakerParams = P) -> list[BreakerState]:
    out, s = [], state or BreakerState.initial()
    for o in obs:
        s = step(s, o, params)
        out.append(s)
    return out


def frozen_then_recovering(params: BreakerParams = P) -> BreakerState:
    """The state right after leaving a freeze (RECOVERY step 0)."""
    states = run([TIER3] + [CALM] * params.cooldown_sessions, params=params)
    assert states[-1].status is Status.RECOVERY and states[-1].recovery_step == 0
    return states[-1]


# ---------------------------------------------------------------------------------------------- params


def test_defaults_match_the_seed() -> None:
    assert (P.var_limit, P.tier2_var_multiple, P.vol_target_ann, P.tier2_vol_multiple) == (0.04, 1.5, 0.10, 2.0)
    assert (P.max_drawdown, P.kill_drawdown, P.defensive_sizing, P.cooldown_sessions) == (0.18, 0.25, 0.25, 10)
    assert P.recovery_steps == (0.2, 0.4, 0.6, 0.8, 1.0)
    assert P.recovery_vol_multiple == 1.5
    assert abs(P.decay - math.log(4.0)) < TOL


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("var_limit", 0.0),
        ("var_limit", float("nan")),
        ("tier2_var_multiple", 0.9),
        ("vol_target_ann", -0.1),
        ("tier2_vol_multiple", 0.0),
        ("tier3_vol_multiple", float("inf")),
        ("max_drawdown", 1.0),
        ("kill_drawdown", 0.1),
        ("kill_drawdown", 1.5),
        ("defensive_sizing", 1.0),
        ("cooldown_sessions", 0),
        ("cooldown_sessions", 2.5),
        ("recovery_steps", ()),
        ("recovery_steps", (0.5, 0.4, 1.0)),
        ("recovery_steps", (0.2, 0.8)),
        ("recovery_step_sessions", 0),
        ("recovery_vol_multiple", 0.0),
        ("dd_decay", -1.0),
    ],
)
def test_params_validation_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        BreakerParams(**{field: value})  # type: ignore[arg-type]


def test_recovery_steps_from_a_yaml_list_become_a_tuple() -> None:
    assert BreakerParams(recovery_steps=[0.5, 1.0]).recovery_steps == (0.5, 1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["var", "vol_ann", "drawdown"])
def test_observation_rejects_missing_or_negative_numbers(field: str) -> None:
    base = {"var": 0.01, "vol_ann": 0.1, "drawdown": 0.0}
    for bad in (float("nan"), -0.01):
        with pytest.raises(ValueError, match=field):
            RiskObservation(**{**base, field: bad})


# ---------------------------------------------------------------------------------------------- tiers


def test_observation_accepts_numpy_scalars() -> None:
    obs = RiskObservation(np.float32(0.05), np.float64(0.1), np.int64(0))
    assert type(obs.var) is float and abs(obs.var - 0.05) < 1e-8 and obs.drawdown == 0.0
    assert step(BreakerState.initial(), obs, P).status is Status.SCALE


def test_calm_is_normal_full_size() -> None:
    s = step(BreakerState.initial(), CALM, P)
    assert (s.status, s.tier, s.last_trigger, s.sessions_in_status) == (Status.NORMAL, 0, "", 1)
    assert sizing_multiplier(s, CALM, P) == 1.0
    assert not blocks_new_risk(s)


def test_tier1_scales_to_the_var_limit() -> None:
    obs = RiskObservation(var=0.05, vol_ann=0.12, drawdown=0.02)
    s = step(BreakerState.initial(), obs, P)
    assert (s.status, s.tier, s.last_trigger) == (Status.SCALE, 1, "TIER1_VAR")
    assert abs(sizing_multiplier(s, obs, P) - 0.8) < TOL  # 0.04 / 0.05
    assert not blocks_new_risk(s)


def test_var_at_the_limits_does_not_trigger() -> None:
    assert step(BreakerState.initial(), RiskObservation(0.04, 0.1, 0.0), P).status is Status.NORMAL
    assert step(BreakerState.initial(), RiskObservation(0.06, 0.2, 0.0), P).status is Status.SCALE


def test_tier2_by_var() -> None:
    obs = RiskObservation(var=0.061, vol_ann=0.12, drawdown=0.02)
    s = step(BreakerState.initial(), obs, P)
    assert (s.status, s.tier, s.last_trigger) == (Status.DEFENSIVE, 2, "TIER2_VAR")
    assert abs(sizing_multiplier(s, obs, P) - 0.25) < TOL


def test_tier2_by_vol() -> None:
    obs = RiskObservation(var=0.01, vol_ann=0.21, drawdown=0.10)
    s = step(BreakerState.initial(), obs, P)
    assert (s.status, s.tier, s.last_trigger) == (Status.DEFENSIVE, 2, "TIER2_VOL")
    assert abs(sizing_multiplier(s, obs, P) - 0.25) < TOL
    both = step(s, RiskObservation(var=0.07, vol_ann=0.21, drawdown=0.10), P)
    assert (both.last_trigger, both.sessions_in_status) == ("TIER2_VAR_VOL", 2)


def test_tiers_release_without_hysteresis() -> None:
    states = run([RiskObservation(0.07, 0.1, 0.0), RiskObservation(0.05, 0.1, 0.0), CALM])
    assert [s.status for s in states] == [Status.DEFENSIVE, Status.SCALE, Status.NORMAL]


def test_tier3_needs_drawdown_and_vol() -> None:
    s = step(BreakerState.initial(), RiskObservation(var=0.01, vol_ann=0.11, drawdown=0.19), P)
    assert (s.status, s.tier, s.cooldown_remaining, s.last_trigger) == (Status.FREEZE, 3, 10, "TIER3_DD_VOL")
    assert blocks_new_risk(s)
    assert sizing_multiplier(s, CALM, P) == 0.0
    # drawdown beyond the limit with vol at the target, or high vol without the drawdown: no freeze
    assert step(BreakerState.initial(), RiskObservation(0.01, 0.10, 0.19), P).status is Status.NORMAL
    assert step(BreakerState.initial(), RiskObservation(0.01, 0.30, 0.18), P).status is Status.DEFENSIVE


def test_kill_drawdown_freezes_regardless_of_vol() -> None:
    s = step(BreakerState.initial(), RiskObservation(var=0.0, vol_ann=0.0, drawdown=0.25), P)
    assert (s.status, s.last_trigger, s.cooldown_remaining) == (Status.FREEZE, "KILL_DRAWDOWN", 10)
    assert step(BreakerState.initial(), RiskObservation(0.0, 0.05, 0.2499), P).status is Status.NORMAL


def test_kill_drawdown_keeps_the_book_frozen_while_it_lasts() -> None:
    deep = RiskObservation(var=0.0, vol_ann=0.02, drawdown=0.26)
    states = run([deep] * 30)
    assert all(s.status is Status.FREEZE and s.cooldown_remaining == 10 for s in states)
    assert states[-1].sessions_in_status == 30
    after = run([CALM] * 10, states[-1])
    assert [s.status for s in after] == [Status.FREEZE] * 9 + [Status.RECOVERY]


# ---------------------------------------------------------------------------------------------- freeze / recovery


def test_cooldown_is_exactly_ten_sessions() -> None:
    states = run([TIER3] + [CALM] * 12)
    statuses = [s.status for s in states]
    assert statuses[:10] == [Status.FREEZE] * 10
    assert statuses[10:] == [Status.RECOVERY] * 3
    assert [s.cooldown_remaining for s in states[:10]] == list(range(10, 0, -1))
    assert states[10].recovery_step == 0 and states[10].last_trigger == "TIER3_DD_VOL"
    assert abs(sizing_multiplier(states[10], CALM, P) - 0.2) < TOL


def test_freeze_waits_for_calm_vol_after_the_cooldown() -> None:
    agitated = RiskObservation(var=0.01, vol_ann=0.151, drawdown=0.05)  # above 1.5 x target: not calm
    states = run([TIER3] + [CALM] * 9 + [agitated] * 4 + [CALM])
    assert [s.status for s in states[:14]] == [Status.FREEZE] * 14
    assert states[13].cooldown_remaining == 0
    assert states[14].status is Status.RECOVERY


def test_new_trigger_during_cooldown_restarts_it() -> None:
    states = run([TIER3] + [CALM] * 5 + [TIER3] + [CALM] * 10)
    assert states[6].cooldown_remaining == 10
    assert [s.status for s in states[6:16]] == [Status.FREEZE] * 10
    assert states[16].status is Status.RECOVERY
    assert states[15].sessions_in_status == 16


def test_recovery_climbs_every_phase_then_returns_to_normal() -> None:
    s = frozen_then_recovering()
    states = run([CALM] * 25, s)
    steps = [s.recovery_step] + [x.recovery_step for x in states[:-1]]
    assert steps == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5 + [4] * 5
    sizes = [sizing_multiplier(x, CALM, P) for x in [s, *states[:-1]]]
    np.testing.assert_allclose(sizes, np.repeat([0.2, 0.4, 0.6, 0.8, 1.0], 5), rtol=0, atol=TOL)
    done = states[-1]
    assert (done.status, done.recovery_step, done.sessions_in_status, done.last_trigger) == (Status.NORMAL, -1, 1, "")


def test_recovery_completion_honours_tier1() -> None:
    s = frozen_then_recovering()
    s = run([CALM] * 24, s)[-1]
    high_var = RiskObservation(var=0.05, vol_ann=0.08, drawdown=0.0)
    assert step(s, high_var, P).status is Status.SCALE


def test_agitated_vol_resets_the_phase_counter() -> None:
    s = frozen_then_recovering()
    agitated = RiskObservation(var=0.01, vol_ann=0.16, drawdown=0.05)
    states = run([CALM] * 4 + [agitated] + [CALM] * 4, s)
    assert [x.recovery_step for x in states] == [0] * 9
    assert [x.sessions_in_step for x in states] == [1, 2, 3, 4, 0, 1, 2, 3, 4]
    assert step(states[-1], CALM, P).recovery_step == 1


def test_tier3_during_recovery_freezes_again() -> None:
    s = run([CALM] * 12, frozen_then_recovering())[-1]
    assert s.recovery_step == 2
    f = step(s, TIER3, P)
    assert (f.status, f.recovery_step, f.cooldown_remaining, f.sessions_in_step) == (Status.FREEZE, -1, 10, 0)
    assert sizing_multiplier(f, TIER3, P) == 0.0


def test_recovery_sizing_is_capped_by_tier_sizing() -> None:
    s = frozen_then_recovering()
    tier2 = RiskObservation(var=0.07, vol_ann=0.12, drawdown=0.05)
    s0 = step(s, tier2, P)
    assert (s0.status, s0.tier, s0.recovery_step) == (Status.RECOVERY, 2, 0)
    assert abs(sizing_multiplier(s0, tier2, P) - 0.2) < TOL  # min(0.2, 0.25)
    s2 = run([CALM] * 9 + [tier2], s)[-1]
    assert (s2.recovery_step, s2.tier) == (2, 2)
    assert abs(sizing_multiplier(s2, tier2, P) - 0.25) < TOL  # min(0.6, 0.25)
    tier1 = RiskObservation(var=0.05, vol_ann=0.12, drawdown=0.05)
    s4 = run([CALM] * 19 + [tier1], s)[-1]
    assert (s4.recovery_step, s4.tier) == (4, 1)
    assert abs(sizing_multiplier(s4, tier1, P) - 0.8) < TOL  # min(1.0, 0.04 / 0.05)


# ---------------------------------------------------------------------------------------------- persistence


def test_row_round_trip_through_a_polars_table() -> None:
    states = run([TIER3] + [CALM] * 15 + [RiskObservation(0.05, 0.1, 0.0)])
    frame = pl.DataFrame([s.to_row() for s in states])
    assert frame.schema["status"] == pl.String and frame.schema["tier"] == pl.Int64
    assert [BreakerState.from_row(r) for r in frame.to_dicts()] == states
    row = {**states[3].to_row(), "date": "2024-01-02", "tier": 3.0}
    assert BreakerState.from_row(row) == states[3]


def test_row_validation() -> None:
    row = BreakerState.initial().to_row()
    with pytest.raises(ValueError, match="lacks"):
        BreakerState.from_row({k: v for k, v in row.items() if k != "tier"})
    with pytest.raises(ValueError, match="tier 3"):
        BreakerState.from_row({**row, "tier": 3})
    with pytest.raises(ValueError, match="integral"):
        BreakerState.from_row({**row, "sessions_in_status": 1.5})
    with pytest.raises(ValueError):
        BreakerState.from_row({**row, "status": "PANIC"})
    with pytest.raises(ValueError, match="recovery_step"):
        BreakerState(status=Status.RECOVERY, recovery_step=-1)


def test_step_rejects_a_state_from_longer_recovery_steps() -> None:
    with pytest.raises(ValueError, match="recovery_step"):
        step(BreakerState(status=Status.RECOVERY, recovery_step=4), CALM, FAST)


# ---------------------------------------------------------------------------------------------- drawdown


def test_drawdown_series() -> None:
    got = drawdown(np.array([100.0, 110.0, 99.0, 121.0, 60.5]))
    np.testing.assert_allclose(got, [0.0, 0.0, 0.1, 0.0, 0.5], rtol=0, atol=TOL)
    assert drawdown(np.array([])).size == 0
    with pytest.raises(ValueError):
        drawdown(np.array([1.0, 0.0]))


def test_drawdown_multiplier_shape() -> None:
    assert drawdown_multiplier(0.0) == 1.0
    assert abs(drawdown_multiplier(0.18, P) - 0.25) < TOL
    assert abs(drawdown_multiplier(0.09, P) - 0.5) < TOL  # exp(-ln4 / 2)
    assert abs(drawdown_multiplier(0.18, BreakerParams(dd_decay=1.0)) - math.exp(-1.0)) < TOL
    grid = np.linspace(0.0, 1.0, 201)
    values = np.array([drawdown_multiplier(float(d), P) for d in grid])
    assert np.all(np.diff(values) < 0) and np.all(values > 0) and np.all(values <= 1)
    for bad in (-0.01, 1.01, float("nan")):
        with pytest.raises(ValueError):
            drawdown_multiplier(bad, P)


# ---------------------------------------------------------------------------------------------- properties


class Auditor:
    """Independent bookkeeping of the protocol that checks every transition ``prev -> new`` under ``obs``."""

    def __init__(self, params: BreakerParams) -> None:
        self.p = params
        self.state = BreakerState.initial()
        self.frozen_for = 0  # FREEZE sessions since the latest trigger
        self.phase_sessions: list[int] = []  # sessions spent in each recovery phase of the current episode
        self.completed = 0  # recoveries that returned to the tier classification

    def apply(self, obs: RiskObservation) -> None:
        p, prev = self.p, self.state
        new = step(prev, obs, p)
        target = p.vol_target_ann
        trigger = obs.drawdown >= p.kill_drawdown or (
            obs.drawdown > p.max_drawdown and obs.vol_ann > p.tier3_vol_multiple * target
        )
        calm = obs.vol_ann < p.recovery_vol_multiple * target
        tier = 1 if obs.var > p.var_limit else 0
        if obs.var > p.tier2_var_multiple * p.var_limit or obs.vol_ann > p.tier2_vol_multiple * target:
            tier = 2

        size = sizing_multiplier(new, obs, p)
        assert 0.0 <= size <= 1.0
        assert blocks_new_risk(new) == (new.status is Status.FREEZE)
        if new.status is Status.FREEZE:
            assert size == 0.0 and new.tier == 3
        else:
            assert size > 0.0 and new.tier == tier
        assert BreakerState.from_row(new.to_row()) == new
        assert new.sessions_in_status == (prev.sessions_in_status + 1 if new.status is prev.status else 1)

        if trigger:
            assert new.status is Status.FREEZE and new.cooldown_remaining == p.cooldown_sessions
            assert new.recovery_step == -1
            self.frozen_for, self.phase_sessions = 1, []
        elif prev.status is Status.FREEZE:
            if new.status is Status.FREEZE:
                self.frozen_for += 1
                assert new.cooldown_remaining == max(prev.cooldown_remaining - 1, 0)
                assert prev.cooldown_remaining > 1 or not calm  # it would have left otherwise
            else:  # leaving: never before the cooldown, never skipping phase 0
                assert self.frozen_for >= p.cooldown_sessions and calm
                assert new.status is Status.RECOVERY and new.recovery_step == 0 and new.sessions_in_step == 0
                self.phase_sessions = [1]
        elif prev.status is Status.RECOVERY:
            if new.status is Status.RECOVERY:
                assert new.recovery_step - prev.recovery_step in (0, 1)
                if new.recovery_step > prev.recovery_step:
                    assert calm and prev.sessions_in_step == p.recovery_step_sessions - 1
                    assert self.phase_sessions[-1] >= p.recovery_step_sessions
                    self.phase_sessions.append(1)
                else:
                    assert new.sessions_in_step == (prev.sessions_in_step + 1 if calm else 0)
                    self.phase_sessions[-1] += 1
            else:  # completion: the last phase held long enough, after every other phase
                assert prev.recovery_step == len(p.recovery_steps) - 1 and calm
                assert len(self.phase_sessions) == len(p.recovery_steps)
                assert all(n >= p.recovery_step_sessions for n in self.phase_sessions)
                assert new.status in (Status.NORMAL, Status.SCALE, Status.DEFENSIVE)
                self.completed += 1
        else:  # NORMAL / SCALE / DEFENSIVE never enter RECOVERY directly
            assert new.status is {0: Status.NORMAL, 1: Status.SCALE, 2: Status.DEFENSIVE}[tier]
        if new.status is not Status.RECOVERY:
            assert new.recovery_step == -1 and new.sessions_in_step == 0
        self.state = new


def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


#: Observation kinds: calm dominates so that recoveries can complete; boundaries are hit exactly too.
KINDS = {
    "calm": st.builds(RiskObservation, _floats(0.0, 0.04), _floats(0.0, 0.149), _floats(0.0, 0.18)),
    "tier1": st.builds(RiskObservation, _floats(0.0401, 0.06), _floats(0.0, 0.2), _floats(0.0, 0.18)),
    "tier2": st.builds(RiskObservation, _floats(0.0, 0.12), _floats(0.15, 0.4), _floats(0.0, 0.18)),
    "tier3": st.builds(RiskObservation, _floats(0.0, 0.12), _floats(0.1, 0.5), _floats(0.18, 0.3)),
    "edge": st.builds(
        RiskObservation,
        st.sampled_from([0.04, 0.06, 0.0600001]),
        st.sampled_from([0.1, 0.15, 0.2]),
        st.sampled_from([0.18, 0.25, 0.0]),
    ),
}
observations = st.sampled_from(["calm"] * 8 + ["tier1", "tier2", "tier3", "edge"]).flatmap(KINDS.__getitem__)
param_sets = st.sampled_from([P, FAST, BreakerParams(cooldown_sessions=1, recovery_steps=(1.0,))])


class BreakerMachine(RuleBasedStateMachine):
    """Random observation sequences, checked transition by transition by :class:`Auditor`."""

    auditor: Auditor

    @initialize(params=param_sets)
    def start(self, params: BreakerParams) -> None:
        self.auditor = Auditor(params)

    @rule(obs=observations)
    def observe(self, obs: RiskObservation) -> None:
        self.auditor.apply(obs)

    @rule(n=st.integers(1, 30), vol=_floats(0.0, 0.149))
    def calm_run(self, n: int, vol: float) -> None:
        for _ in range(n):
            self.auditor.apply(RiskObservation(var=0.01, vol_ann=vol, drawdown=0.05))

    @invariant()
    def freeze_blocks_and_sizes_zero(self) -> None:
        s = self.auditor.state
        if s.status is Status.FREEZE:
            assert blocks_new_risk(s) and sizing_multiplier(s, CALM, self.auditor.p) == 0.0
            assert 0 <= s.cooldown_remaining <= self.auditor.p.cooldown_sessions


BreakerMachine.TestCase.settings = settings(max_examples=120, stateful_step_count=40, deadline=None)
TestBreakerMachine = BreakerMachine.TestCase


@settings(max_examples=150, deadline=None)
@given(params=param_sets, seq=st.lists(observations, min_size=1, max_size=150))
def test_random_sequences_respect_the_protocol(params: BreakerParams, seq: list[RiskObservation]) -> None:
    auditor = Auditor(params)
    for obs in seq:
        auditor.apply(obs)


def test_long_random_walk_completes_recoveries() -> None:
    """A seeded long run exercises every path, including several full recoveries, under the auditor."""
    rng = np.random.default_rng(7)
    auditor = Auditor(P)
    statuses = set()
    for _ in range(20_000):
        u = rng.random()
        vol = rng.uniform(0.0, 0.14) if u < 0.93 else rng.uniform(0.0, 0.4)
        dd = rng.uniform(0.0, 0.15) if u < 0.985 else rng.uniform(0.15, 0.3)
        auditor.apply(RiskObservation(var=rng.uniform(0.0, 0.07), vol_ann=vol, drawdown=dd))
        statuses.add(auditor.state.status)
    assert statuses == set(Status)
    assert auditor.completed >= 3
