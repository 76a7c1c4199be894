"""The chaos suite's fault plan: one seed, one plan; every kind early; never a fault on a part
that is still down; bad shapes refused with the reason."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from muster.chaos_plan import (
    CLOCK_JUMP,
    FAULT_KINDS,
    KILL_BROKER,
    KILL_CONTROLLER,
    KILL_DATABASE,
    KILL_DEVICE,
    LATENCY_LOSS,
    PARTITION_DEVICE,
    PlanShape,
    plan_commands,
    plan_faults,
)
from muster.errors import ConfigError

DEVICES = ["device-1", "device-2", "device-3"]


def shape(**overrides: Any) -> PlanShape:
    targets = {
        KILL_DEVICE: DEVICES,
        CLOCK_JUMP: DEVICES,
        PARTITION_DEVICE: DEVICES,
        LATENCY_LOSS: DEVICES,
        KILL_CONTROLLER: ["controller-1", "controller-2"],
        KILL_BROKER: ["broker"],
        KILL_DATABASE: ["database"],
    }
    return PlanShape(targets=targets, **{"faults": 200, **overrides})


def test_the_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    """A failing run replays from its seed alone."""
    assert plan_faults(7, shape()) == plan_faults(7, shape())
    assert plan_faults(7, shape()) != plan_faults(8, shape())


def test_the_first_faults_take_every_kind_once() -> None:
    """A short run covers every kind, whatever the weights say."""
    plan = plan_faults(3, shape(faults=len(FAULT_KINDS)))
    assert sorted(f.kind for f in plan) == sorted(FAULT_KINDS)


@pytest.mark.parametrize("seed", range(20))
def test_no_target_is_hit_while_it_is_still_down(seed: int) -> None:
    """Each fault lands on a live part: its last fault's down time (and settle) is over."""
    settle = {KILL_CONTROLLER: 5.0}
    plan = plan_faults(seed, shape(faults=300, settle_s=settle, mean_gap_s=0.3))
    back_at: dict[str, float] = {}
    for fault in plan:
        assert fault.at_s >= back_at.get(fault.target, 0.0), fault
        back_at[fault.target] = fault.at_s + fault.down_s + settle.get(fault.kind, 0.0)
    assert [f.number for f in plan] == list(range(1, 301))
    assert all(a.at_s <= b.at_s for a, b in itertools.pairwise(plan))


def test_targets_and_sizes_stay_in_their_ranges() -> None:
    """A fault hits only a target of its kind; clock jumps go both ways within the range."""
    s = shape(faults=400)
    plan = plan_faults(11, s)
    for fault in plan:
        assert fault.target in s.targets[fault.kind]
        low, high = s.down_s[fault.kind]
        assert low <= fault.down_s <= high
        if fault.kind == CLOCK_JUMP:
            assert s.clock_jump_s[0] <= abs(fault.clock_offset_s) <= s.clock_jump_s[1]
        else:
            assert fault.clock_offset_s == 0.0
        if fault.kind == LATENCY_LOSS:
            assert s.delay_ms[0] <= fault.delay_ms <= s.delay_ms[1]
            assert s.loss_pct[0] <= fault.loss_pct <= s.loss_pct[1]
        else:
            assert fault.delay_ms == 0.0 and fault.loss_pct == 0.0
    jumps = [f.clock_offset_s for f in plan if f.kind == CLOCK_JUMP]
    assert min(jumps) < 0 < max(jumps)


def test_a_kind_without_targets_is_left_out() -> None:
    """Where no database can be killed (SQLite), the plan never names one."""
    targets = {KILL_DEVICE: DEVICES, KILL_DATABASE: []}
    plan = plan_faults(1, PlanShape(faults=50, targets=targets))
    assert {f.kind for f in plan} == {KILL_DEVICE}


def test_the_log_entry_is_one_json_line_with_the_seed() -> None:
    """The JSONL log names time, kind, target and seed of every fault."""
    fault = plan_faults(5, shape(faults=1))[0]
    line = json.dumps(fault.log_entry(seed=5, time="2026-12-01T00:00:00+00:00"))
    entry = json.loads(line)
    assert entry["kind"] == fault.kind and entry["target"] == fault.target
    assert entry["seed"] == 5 and entry["time"].startswith("2026-12-01")


def test_latency_faults_log_their_delay_and_loss() -> None:
    """A latency/loss fault's line says how slow and how lossy the link was made."""
    plan = plan_faults(9, shape(faults=60))
    slow = [f for f in plan if f.kind == LATENCY_LOSS]
    assert slow
    entry = slow[0].log_entry(seed=9, time="2026-12-01T00:00:00+00:00")
    assert entry["delay_ms"] == round(slow[0].delay_ms, 1) and entry["delay_ms"] > 0
    assert entry["loss_pct"] == round(slow[0].loss_pct, 2)


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"faults": -1}, "故障数"),
        ({"mean_gap_s": 0}, "间隔"),
        ({"down_s": {KILL_DEVICE: (3.0, 1.0)}}, KILL_DEVICE),
        ({"clock_jump_s": (0.0, 10.0)}, "时钟"),
        ({"delay_ms": (-1.0, 10.0)}, "延迟"),
        ({"delay_ms": (500.0, 10.0)}, "延迟"),
        ({"loss_pct": (0.0, 100.0)}, "丢包"),
        ({"loss_pct": (-5.0, 10.0)}, "丢包"),
    ],
)
def test_bad_shapes_are_refused_with_the_reason(overrides: dict[str, object], names: str) -> None:
    """A shape that cannot make a plan says which part is wrong."""
    with pytest.raises(ConfigError, match=names):
        plan_faults(1, shape(**overrides))


def test_unknown_kinds_and_empty_targets_are_refused() -> None:
    """A typo in a kind, or nothing to hit at all, is an error, not an empty plan."""
    with pytest.raises(ConfigError, match="kill_router"):
        plan_faults(1, PlanShape(faults=3, targets={"kill_router": ["r"]}))
    with pytest.raises(ConfigError, match="目标"):
        plan_faults(1, PlanShape(faults=3, targets={KILL_DEVICE: []}))


def test_commands_are_seeded_spread_and_some_short_lived() -> None:
    """Commands replay from the seed, fall inside the run, and some expire in seconds."""
    first = plan_commands(4, DEVICES, 100, 60.0)
    assert first == plan_commands(4, DEVICES, 100, 60.0)
    assert all(0 <= c.at_s <= 60 and c.target in DEVICES for c in first)
    short = [c for c in first if c.expires_in_s is not None]
    assert 0 < len(short) < 100
    with pytest.raises(ConfigError, match="设备"):
        plan_commands(4, [], 3, 60.0)
    with pytest.raises(ConfigError, match="count"):
        plan_commands(4, DEVICES, -1, 60.0)
