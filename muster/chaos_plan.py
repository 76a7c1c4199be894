"""The chaos suite's fault plan: a seeded schedule of fault events, pure (no processes, no clock,
no sleeps). The runner (``tests/chaos/runner.py``) turns each event into a ``kill -9``, a cut
link or a restart under a jumped clock, and writes every event it injects to a JSONL log.

The same seed and shape give the same plan, byte for byte, so a failing run replays. A target is
never hit again while it is still down from its last fault (plus a settle time), so every fault
lands on a live part. The first faults take every kind once, in a seeded order, so a short run
covers them all.

Fault kinds today (one Mosquitto, controller replicas, one PostgreSQL)::

    kill_device        kill -9 a device daemon; restarted after down_s
    kill_controller    kill -9 a controller replica; restarted after down_s
    kill_broker        kill -9 Mosquitto; restarted after down_s
    kill_database      kill -9 the PostgreSQL postmaster; restarted after down_s
    clock_jump         restart a device with its clock moved by clock_offset_s for down_s
    partition_device   cut every link of one device (uploads and MQTT) for down_s: its
                       packets dropped, so it hears nothing (no reset) until it heals
    latency_loss       slow one device's links down (``tc netem``: delay_ms +- a quarter,
                       loss_pct of the packets lost) for down_s

A new target (a broker node of a cluster, a replica database) is a
new kind: a name here with its targets in ``PlanShape.targets``, and one action in the runner.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from muster.errors import ConfigError

__all__ = [
    "CLOCK_JUMP",
    "DEFAULT_WEIGHTS",
    "FAULT_KINDS",
    "KILL_BROKER",
    "KILL_CONTROLLER",
    "KILL_DATABASE",
    "KILL_DEVICE",
    "LATENCY_LOSS",
    "PARTITION_DEVICE",
    "CommandEvent",
    "Fault",
    "PlanShape",
    "plan_commands",
    "plan_faults",
]

KILL_DEVICE = "kill_device"
KILL_CONTROLLER = "kill_controller"
KILL_BROKER = "kill_broker"
KILL_DATABASE = "kill_database"
CLOCK_JUMP = "clock_jump"
PARTITION_DEVICE = "partition_device"
LATENCY_LOSS = "latency_loss"
FAULT_KINDS: tuple[str, ...] = (
    KILL_DEVICE,
    KILL_CONTROLLER,
    KILL_BROKER,
    KILL_DATABASE,
    CLOCK_JUMP,
    PARTITION_DEVICE,
    LATENCY_LOSS,
)

# Devices are the many, so they take most faults; the shared parts are hit often enough to
# matter without keeping the centre down most of the run.
DEFAULT_WEIGHTS: Mapping[str, float] = {
    KILL_DEVICE: 4.0,
    KILL_CONTROLLER: 2.0,
    KILL_BROKER: 1.0,
    KILL_DATABASE: 1.0,
    CLOCK_JUMP: 1.5,
    PARTITION_DEVICE: 1.5,
    LATENCY_LOSS: 1.5,
}


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault: at ``at_s`` seconds into the run, ``kind`` hits ``target`` for ``down_s``
    (a clock jump moves it by ``clock_offset_s``; latency/loss adds ``delay_ms`` and drops
    ``loss_pct`` per cent of the packets)."""

    number: int
    at_s: float
    kind: str
    target: str
    down_s: float
    clock_offset_s: float = 0.0
    delay_ms: float = 0.0
    loss_pct: float = 0.0

    def log_entry(self, *, seed: int, time: str) -> dict[str, Any]:
        """The JSONL line the runner writes when it injects this fault (``time``: when it did)."""
        return {
            "time": time,
            "number": self.number,
            "at_s": round(self.at_s, 3),
            "kind": self.kind,
            "target": self.target,
            "down_s": round(self.down_s, 3),
            "clock_offset_s": round(self.clock_offset_s, 3),
            "delay_ms": round(self.delay_ms, 1),
            "loss_pct": round(self.loss_pct, 2),
            "seed": seed,
        }


@dataclass(frozen=True, slots=True)
class CommandEvent:
    """An admin command to ``target`` at ``at_s``; ``expires_in_s`` None keeps the default."""

    at_s: float
    target: str
    expires_in_s: float | None


def _default_down() -> dict[str, tuple[float, float]]:
    return {
        KILL_DEVICE: (0.2, 3.0),
        KILL_CONTROLLER: (0.5, 4.0),
        KILL_BROKER: (0.5, 3.0),
        KILL_DATABASE: (0.5, 3.0),
        CLOCK_JUMP: (3.0, 8.0),
        PARTITION_DEVICE: (1.0, 6.0),
        LATENCY_LOSS: (2.0, 8.0),
    }


@dataclass(frozen=True)
class PlanShape:
    """What a plan may hit and how hard.

    ``targets``: kind -> the names it may hit (a kind with none is left out of the plan);
    ``mean_gap_s``: mean time between faults (exponential gaps); ``down_s``: kind -> (min, max)
    time down; ``settle_s``: kind -> extra time after coming back before the same target may be
    hit again (a controller needs seconds to start); ``clock_jump_s``: (min, max) of the size of
    a clock jump, either direction; ``delay_ms`` and ``loss_pct``: (min, max) of a latency/loss
    fault's added delay and share of packets lost.
    """

    faults: int
    targets: Mapping[str, Sequence[str]]
    mean_gap_s: float = 1.5
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    down_s: Mapping[str, tuple[float, float]] = field(default_factory=_default_down)
    settle_s: Mapping[str, float] = field(default_factory=dict)
    clock_jump_s: tuple[float, float] = (60.0, 6 * 3600.0)
    delay_ms: tuple[float, float] = (50.0, 1500.0)
    loss_pct: tuple[float, float] = (0.0, 40.0)

    def check(self) -> None:
        if self.faults < 0:
            raise ConfigError(f"故障数不能为负数: {self.faults}")
        if not self.mean_gap_s > 0:
            raise ConfigError(f"故障平均间隔必须大于 0 秒: {self.mean_gap_s}")
        unknown = sorted(set(self.targets) - set(FAULT_KINDS))
        if unknown:
            raise ConfigError(
                f"未知的故障类型: {', '.join(unknown)}; 可用: {', '.join(FAULT_KINDS)}"
            )
        for kind, (low, high) in self.down_s.items():
            if not 0 <= low <= high:
                raise ConfigError(f"{kind} 的停机时间范围无效: ({low}, {high})")
        low, high = self.clock_jump_s
        if not 0 < low <= high:
            raise ConfigError(f"时钟跳变范围无效: ({low}, {high})")
        low, high = self.delay_ms
        if not 0 <= low <= high:
            raise ConfigError(f"网络延迟范围无效 (毫秒): ({low}, {high})")
        low, high = self.loss_pct
        if not 0 <= low <= high < 100:
            raise ConfigError(f"丢包率范围无效 (须在 0 到 100 之间, 不含 100): ({low}, {high})")
        if self.faults and not self._kinds():
            raise ConfigError("没有可注入故障的目标: 每种故障类型都没有目标")

    def _kinds(self) -> list[str]:
        return [k for k in FAULT_KINDS if self.targets.get(k) and self.weights.get(k, 0.0) > 0]


def plan_faults(seed: int, shape: PlanShape) -> tuple[Fault, ...]:
    """The run's faults in time order, from ``random.Random(seed)`` alone."""
    shape.check()
    rng = random.Random(seed)
    kinds = shape._kinds()
    opening = list(kinds)
    rng.shuffle(opening)
    free_at: dict[str, float] = {}
    faults: list[Fault] = []
    now = 0.0
    for number in range(1, shape.faults + 1):
        now += min(rng.expovariate(1.0 / shape.mean_gap_s), 4 * shape.mean_gap_s)
        wanted = opening.pop(0) if opening else _weighted(rng, kinds, shape.weights)
        kind, target, now = _free_target(rng, wanted, kinds, shape, free_at, now)
        low, high = shape.down_s.get(kind, (0.5, 3.0))
        down = rng.uniform(low, high)
        offset = delay = loss = 0.0
        if kind == CLOCK_JUMP:
            offset = rng.uniform(*shape.clock_jump_s) * rng.choice((-1.0, 1.0))
        elif kind == LATENCY_LOSS:
            delay = rng.uniform(*shape.delay_ms)
            loss = rng.uniform(*shape.loss_pct)
        free_at[target] = now + down + shape.settle_s.get(kind, 0.0)
        faults.append(Fault(number, now, kind, target, down, offset, delay, loss))
    return tuple(faults)


def _weighted(rng: random.Random, kinds: Sequence[str], weights: Mapping[str, float]) -> str:
    return rng.choices(list(kinds), weights=[weights.get(k, 0.0) for k in kinds])[0]


def _free_target(
    rng: random.Random,
    wanted: str,
    kinds: Sequence[str],
    shape: PlanShape,
    free_at: Mapping[str, float],
    now: float,
) -> tuple[str, str, float]:
    """A live target of ``wanted``, else of another kind, else the first to come back (and the
    time then). The order of the fallbacks is seeded too, so the plan stays a function of it."""
    order = [wanted, *(k for k in kinds if k != wanted)]
    for kind in order:
        live = [t for t in shape.targets[kind] if free_at.get(t, 0.0) <= now]
        if live:
            return kind, rng.choice(live), now
    kind = wanted
    target = min(shape.targets[kind], key=lambda t: (free_at.get(t, 0.0), t))
    return kind, target, max(now, free_at.get(target, 0.0))


def plan_commands(
    seed: int, devices: Sequence[str], count: int, duration_s: float, short_share: float = 0.3
) -> tuple[CommandEvent, ...]:
    """``count`` admin commands spread over ``duration_s``; ``short_share`` of them with a
    validity of a few seconds, so a device that is down when they are sent lets them expire."""
    if count < 0 or duration_s < 0 or not 0 <= short_share <= 1:
        raise ConfigError(
            f"命令计划参数无效: count={count}, duration_s={duration_s}, short_share={short_share}"
        )
    if count and not devices:
        raise ConfigError("命令计划需要至少一台设备")
    # Its own stream, so adding commands never moves the faults of the same seed.
    rng = random.Random(f"{seed}:commands")
    events = [
        CommandEvent(
            at_s=rng.uniform(0, duration_s),
            target=rng.choice(list(devices)),
            expires_in_s=rng.uniform(2.0, 6.0) if rng.random() < short_share else None,
        )
        for _ in range(count)
    ]
    return tuple(sorted(events, key=lambda e: e.at_s))
