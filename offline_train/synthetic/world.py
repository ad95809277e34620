"""Ground-plane dynamics of the synthetic world: agents follow behaviour plans; the result is a (T, K) state history.

World frame as in ``camera.py`` (metres, x right, y up, z forward; y = 0 is the ground or water surface). Time
base: frame ``t`` is at ``t / fps`` seconds. Agents are updated in index order every frame; a behaviour that
refers to another agent (``target``) always refers to an earlier index, so attachments (ride, rest, with) read the
target's state of the same frame, and steering behaviours (approach, follow, chase, ...) read it too. ``flee``
reads its chaser (a later index) from the previous frame.

Behaviour modes (``Behaviour.mode``):

======== ===========================================================================================
idle     stay in place with a posture (stand / sit / lie); vehicles are parked, objects lie still
wander   travel at ``speed`` turning smoothly at random (turn rate: Ornstein-Uhlenbeck process with spread
         ``TURN_STD`` and time constant ``TURN_TAU_S``); steer back into the stage when outside
cross    travel in a straight line at ``heading`` and ``speed``, at ``altitude`` if > 0 (driving past, flying
         over, passing by)
fly      like wander at altitude ``altitude`` (take-off and landing at a limited climb rate)
approach head for ``target`` at ``speed``; stop next to it and stay (idle, standing)
depart   head directly away from ``target`` at ``speed``
follow   walk ``target``'s own path about ``offset`` metres behind it (aim where it was ``offset`` m ago; speed
         scaled by distance / offset)
chase    head for ``target`` at ``speed`` (faster than the target); keep its pace once caught up
flee     run at ``speed`` away from ``target`` (the chaser), drifting, staying in the stage
with     move side by side with ``target`` at lateral ``offset`` m, same velocity
ride     sit or stand on ``target`` (a mount) at ``altitude`` m, moving with it; ``support`` = target
rest     sit or lie on ``target`` (a sofa) at ``altitude`` m, ``offset`` m along it; ``support`` = target
thrown   fly at ``speed`` along ``heading`` from ``altitude``, slowing and sinking until it lands
rolled   roll along ``heading`` from ``speed``, slowing exponentially (time constant ``ROLL_TAU_S``)
======== ===========================================================================================
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from offline_train.synthetic.categories import Setting, body_size, pair_size, profile

MODES = ("idle", "wander", "cross", "fly", "approach", "depart", "follow", "chase", "flee", "with", "ride",
         "rest", "thrown", "rolled")
ATTACHED = ("with", "ride", "rest")
POSTURE_HEIGHT = {"stand": 1.0, "sit": 0.65, "lie": 0.35}   # fraction of the standing height
TURN_RATE = {"legged": 3.0, "creeper": 2.0, "swimmer": 0.6, "vehicle": 0.7, "object": 0.0}   # rad/s
ACCEL_TIME_S = 0.8          # s to go from rest to the run speed
TURN_STD = 0.3              # rad/s, spread of a wandering agent's turn rate (smooth random turning)
TURN_TAU_S = 1.5            # s, correlation time of that turn rate
JUMP_S = 0.5                # s, duration of a jump
JUMP_PEAK = 0.3             # of the standing height
ROLL_TAU_S = 2.0            # s, speed decay of a rolled ball
THROW_TAU_S = 1.5           # s, speed decay of a thrown frisbee
ARRIVE_GAP = 0.3            # of the pair size (categories.pair_size): approach stops at this footprint gap
SWIM_SUBMERGED = 0.5        # fraction of a swimmer's height below the water surface


@dataclass(frozen=True)
class Behaviour:
    """One behaviour of an agent (see module docstring). speed: m/s; heading: rad; altitude: m; offset: m."""

    mode: str
    target: int = -1
    speed: float = 0.0
    heading: float = 0.0
    altitude: float = 0.0
    posture: str = "stand"
    offset: float = 0.0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"behaviour mode must be one of {MODES}, got {self.mode!r}")
        if self.posture not in POSTURE_HEIGHT:
            raise ValueError(f"behaviour posture must be one of {tuple(POSTURE_HEIGHT)}, got {self.posture!r}")
        if self.speed < 0:
            raise ValueError(f"behaviour speed must be >= 0, got {self.speed}")


@dataclass(frozen=True)
class AgentPlan:
    """What one agent does. start: (x, base altitude, z) m at frame 0; heading: rad; speed: m/s at frame 0.

    segments: ((first_frame, Behaviour), ...) sorted, the first starting at frame 0.
    jumps: frames at which a jump starts (legged agents on their own feet only). scale: size multiplier.
    """

    category: str
    start: tuple[float, float, float]
    heading: float
    speed: float
    segments: tuple[tuple[int, Behaviour], ...]
    jumps: tuple[int, ...] = ()
    scale: float = 1.0


@dataclass(frozen=True, eq=False)
class WorldStates:
    """State history of K agents over T frames (all float64 unless said).

    fps: frames per second. water: the ground plane is water. categories: K names. dims: (K, 3) standing
    (width, height, length), m. pos: (T, K, 3) (x, base altitude, z), m. vel: (T, K, 3) m/s (backward difference
    of ``pos``; frame 0 copies frame 1). heading: (T, K) yaw of the length axis, rad. extent: (T, K, 3) current
    (width, height, length) with posture, m. support: (T, K) int64 index of the agent it sits/stands on, or -1.
    """

    fps: float
    water: bool
    categories: tuple[str, ...]
    dims: np.ndarray
    pos: np.ndarray
    vel: np.ndarray
    heading: np.ndarray
    extent: np.ndarray
    support: np.ndarray

    @property
    def frames(self) -> int:
        return int(self.pos.shape[0])


def posture_extent(category: str, dims: np.ndarray, posture: str) -> np.ndarray:
    """(3,) extent (width, height, length) in m of an agent with standing ``dims`` in ``posture``."""
    w, h, l = (float(v) for v in dims)
    f = POSTURE_HEIGHT[posture]
    if posture == "lie" and category == "person":
        return np.array([w, f * h, max(l, h)])    # an upright body lies along its height
    if posture == "sit" and category == "person":
        return np.array([w, f * h, max(l, 0.35 * h)])
    return np.array([w, f * h, l])


def _turn(heading: float, desired: float, max_step: float) -> float:
    d = (desired - heading + math.pi) % (2 * math.pi) - math.pi
    return heading + max(-max_step, min(max_step, d))


def simulate(plans: list[AgentPlan], setting: Setting, half_width: Callable[[float], float], frames: int, fps: float,
             rng: np.random.Generator) -> WorldStates:
    """Run the plans for ``frames`` frames at ``fps``. ``half_width(depth) -> m`` bounds the stage laterally.

    rng drives the random turning only (plans hold every other random choice), so equal rng states give equal
    worlds.
    """
    if frames < 2:
        raise ValueError(f"frames must be >= 2, got {frames}")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    k, dt = len(plans), 1.0 / fps
    cats = tuple(p.category for p in plans)
    profs = [profile(c) for c in cats]
    dims = np.array([np.array(pr.size) * p.scale for pr, p in zip(profs, plans)], np.float64).reshape(k, 3)
    pos = np.zeros((frames, k, 3))
    heading = np.zeros((frames, k))
    extent = np.zeros((frames, k, 3))
    support = np.full((frames, k), -1, np.int64)
    speed = np.array([p.speed for p in plans], np.float64)
    arrived = np.zeros(k, bool)
    turn = np.zeros(k)                    # current random turn rate of each agent, rad/s
    keep = math.exp(-dt / TURN_TAU_S)
    z0, z1 = setting.depth
    jump_len = max(2, round(JUMP_S * fps))
    for t in range(frames):
        for i, plan in enumerate(plans):
            b = _active(plan, t)
            kind = profs[i].kind
            if b.mode == "approach" and arrived[i]:
                b = Behaviour("idle")
            if b.mode in ATTACHED:
                _attach(i, cats[i], b, t, pos, heading, speed, extent, support, dims)
                continue
            extent[t, i] = posture_extent(cats[i], dims[i], b.posture if b.mode == "idle" else "stand")
            if t == 0:
                pos[0, i] = plan.start
                heading[0, i] = plan.heading
                if setting.water and kind != "vehicle" and plan.start[1] <= 0:
                    pos[0, i, 1] = -SWIM_SUBMERGED * extent[0, i, 1]
                continue
            prev = pos[t - 1, i]
            turn[i] = keep * turn[i] + TURN_STD * math.sqrt(1.0 - keep * keep) * rng.standard_normal()
            want_h, want_v, want_alt = _control(i, b, t, profs[i], pos, heading, speed, dims, arrived,
                                                half_width, (z0, z1), turn[i] * dt, dt)
            heading[t, i] = _turn(heading[t - 1, i], want_h, TURN_RATE[kind] * dt) if kind != "object" else want_h
            if b.mode in ("rolled", "thrown"):
                tau = ROLL_TAU_S if b.mode == "rolled" else THROW_TAU_S
                speed[i] *= math.exp(-dt / tau)
            else:
                top = max(profs[i].run, profs[i].fly, 0.1)
                step = top / ACCEL_TIME_S * dt
                speed[i] += max(-step, min(step, want_v - speed[i]))
            h = heading[t, i]
            x, z = prev[0] + speed[i] * math.cos(h) * dt, prev[2] + speed[i] * math.sin(h) * dt
            climb = max(1.0, 0.3 * max(profs[i].fly, profs[i].run)) * dt
            alt = prev[1] + max(-climb, min(climb, want_alt - prev[1]))
            pos[t, i] = (x, alt, z)
            j = _in_jump(plan, t, jump_len) if kind == "legged" and b.mode in ("idle", "wander") else 0
            if j:
                s = (t - j) / jump_len
                pos[t, i, 1] = 4.0 * JUMP_PEAK * dims[i, 1] * s * (1.0 - s)
    return make_states(cats, pos, fps, heading, extent, support, setting.water, dims)


def make_states(categories, pos, fps: float, heading=None, extent=None, support=None, water: bool = False,
                dims=None) -> WorldStates:
    """Build ``WorldStates`` from trajectories (hand-made scenes, tests, ``simulate``).

    categories: K names. pos: (T, K, 3) (x, base altitude, z), m. heading: (T, K) rad, default: direction of
    travel (the previous one while still, 0 before any motion). extent: (T, K, 3) m, default: the standing size.
    support: (T, K) int, default -1. dims: (K, 3) standing size, default: the category sizes. Velocities are the
    backward differences of ``pos`` times ``fps`` (frame 0 copies frame 1).
    """
    cats = tuple(categories)
    pos = np.asarray(pos, dtype=np.float64)
    if pos.ndim != 3 or pos.shape[1:] != (len(cats), 3) or pos.shape[0] < 2:
        raise ValueError(f"pos must have shape (T >= 2, {len(cats)}, 3), got {pos.shape}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    t, k = pos.shape[:2]
    dims = np.array([profile(c).size for c in cats], np.float64).reshape(k, 3) if dims is None else np.asarray(
        dims, np.float64)
    vel = np.zeros_like(pos)
    vel[1:] = (pos[1:] - pos[:-1]) * fps
    vel[0] = vel[1]
    if heading is None:
        heading = np.zeros((t, k))
        moving = np.hypot(vel[..., 0], vel[..., 2]) > 1e-9
        for f in range(t):
            heading[f] = np.where(moving[f], np.arctan2(vel[f, :, 2], vel[f, :, 0]), heading[f - 1] if f else 0.0)
    extent = np.broadcast_to(dims, (t, k, 3)).copy() if extent is None else np.asarray(extent, np.float64)
    support = np.full((t, k), -1, np.int64) if support is None else np.asarray(support, np.int64)
    for name, a, shape in (("heading", heading, (t, k)), ("extent", extent, (t, k, 3)), ("support", support, (t, k))):
        if np.shape(a) != shape:
            raise ValueError(f"{name} must have shape {shape}, got {np.shape(a)}")
    return WorldStates(float(fps), bool(water), cats, dims, pos, vel, np.asarray(heading, np.float64), extent,
                       support)


def _active(plan: AgentPlan, t: int) -> Behaviour:
    current = plan.segments[0][1]
    for first, b in plan.segments:
        if first <= t:
            current = b
    return current


def _in_jump(plan: AgentPlan, t: int, jump_len: int) -> int:
    """The start frame of the jump under way at frame t, or 0 (jumps never start at frame 0)."""
    for j in plan.jumps:
        if 0 < j <= t < j + jump_len:
            return j
    return 0


def _attach(i, category, b, t, pos, heading, speed, extent, support, dims) -> None:
    """Place an attached agent relative to its target's state at frame t."""
    j = b.target
    h = heading[t, j]
    pos[t, i] = pos[t, j]
    heading[t, i] = h
    speed[i] = speed[j]
    if b.mode == "with":
        pos[t, i, 0] += -math.sin(h) * b.offset
        pos[t, i, 2] += math.cos(h) * b.offset
        extent[t, i] = dims[i]
        return
    pos[t, i, 1] = pos[t, j, 1] + b.altitude
    if b.mode == "rest":         # side by side along the sofa
        pos[t, i, 0] += math.cos(h) * b.offset
        pos[t, i, 2] += math.sin(h) * b.offset
    extent[t, i] = posture_extent(category, dims[i], b.posture)
    support[t, i] = j


def _control(i, b, t, prof, pos, heading, speed, dims, arrived, half_width, depth, wander_turn, dt):
    """Desired (heading rad, speed m/s, base altitude m) for agent i at frame t from its state at t - 1."""
    p = pos[t - 1, i]
    h = heading[t - 1, i]
    alt = min(p[1], 0.0)     # swimmers keep their depth; anything in the air comes down unless it flies
    mode = b.mode
    if mode == "idle":
        return h, 0.0, alt
    if mode in ("cross", "rolled"):
        return b.heading, b.speed, (b.altitude if b.altitude > 0 else alt)
    if mode == "thrown":
        return b.heading, b.speed, 0.0 if speed[i] < 0.5 * b.speed else b.altitude
    j = b.target
    if j >= 0:
        q = pos[t if j < i else t - 1, j]
        dx, dz = q[0] - p[0], q[2] - p[2]
        to_target = math.atan2(dz, dx)
        dist = math.hypot(dx, dz)
        pair = float(pair_size(body_size(dims[i]), body_size(dims[j])))
        radii = 0.5 * (max(dims[i, 0], dims[i, 2]) + max(dims[j, 0], dims[j, 2]))
    if mode == "approach":
        if dist - radii <= ARRIVE_GAP * pair:
            arrived[i] = True
            return h, 0.0, alt
        return to_target, b.speed, alt
    if mode == "depart":
        return to_target + math.pi, b.speed, alt
    if mode == "chase":          # once caught up, keep pace behind the target instead of running through it
        caught = dist - radii <= 2.0 * ARRIVE_GAP * pair
        return to_target, (min(b.speed, speed[j]) if caught else b.speed), alt
    if mode == "follow":         # walk the target's own path: aim where it was ``offset`` metres ago
        lag = round(b.offset / max(speed[j], 0.05 * pair) / dt)
        crumb = pos[max(0, t - 1 - lag), j]
        want = speed[j] * min(1.5, dist / max(b.offset, 1e-6))
        return math.atan2(crumb[2] - p[2], crumb[0] - p[0]), min(want, max(prof.run, prof.walk)), alt
    # wander, fly, flee: random smooth turning, pulled back into the stage
    want = h + wander_turn
    if mode == "flee":
        if dist < 8.0 * pair:    # half drift, half straight away from the chaser (vector mean of the two)
            away = to_target + math.pi
            want = math.atan2(math.sin(want) + math.sin(away), math.cos(want) + math.cos(away))
    z0, z1 = depth
    if not (z0 <= p[2] <= z1 and abs(p[0]) <= 0.8 * half_width(p[2])):
        want = math.atan2(0.5 * (z0 + z1) - p[2], -p[0])
    return want, b.speed, (b.altitude if mode == "fly" else alt)
