"""Ground-truth predicate rules of the synthetic world: one small pure function per pattern, over per-frame states.

Every rule reads the 3D world state and the camera the way a person labelling the video would, and every threshold
is a named constant below (values and units next to each). Notation: subject ``s``, object ``o``; ``L`` = pair size = geometric mean of the two
body sizes, body size = the larger of standing height and length (m; ``categories.pair_size``), so thresholds scale
from hamsters to trains; ``h`` = standing height (m); speed = ground-plane speed (m/s);
*moving* = speed >= ``MOVING_MIN`` * h per second; *gap* = distance between the two ground footprints (upright
boxes seen from above), largest separation along any of their four side directions, negative when they overlap;
*bottom*/*top* = lowest/highest point (m, y up, 0 = ground or water surface); image boxes are the unclipped
projections of the 3D boxes (px). Rates use the window of the last ``MOTION_WINDOW_S`` seconds (the first full
window during the first second).

Action of the subject (first matching row wins; ``action_of``):

======= ========================================================================================================
fly     can fly (bird, airplane, frisbee) and bottom >= ``FLY_MIN`` * h
swim    water setting, legged / creeper / swimmer, bottom < 0
jump    legged, not on another agent, bottom >= ``JUMP_MIN`` * h
sit/lie on another agent (rider, sofa): lie if current height <= ``LIE_MAX`` * h, sit if <= ``SIT_MAX`` * h,
        else stand
sit/lie legged on the ground, by the same height fractions
run     legged on the ground, moving, speed >= run threshold of the category (midpoint of walk and run speed)
walk    legged on the ground, moving, slower
creep   creeper (snake, lizard, turtle), moving
move    vehicle or object, moving
stop    not moving now but moving at some time in the last ``STOP_MEMORY_S`` seconds (not objects)
stand   legged, still; ``lie`` for a still creeper; none for a still vehicle or object
======= ========================================================================================================

Spatial patterns (``spatial_patterns``; s relative to o):

======= ========================================================================================================
left    image: centre_x(o) - centre_x(s) >= ``LR_MIN_SEP`` * mean box width of s and o; ``right`` mirrored
front   camera depth: depth(o) - depth(s) >= ``FRONT_MIN_DEPTH`` * L (s nearer the camera); ``behind`` mirrored
above   bottom(s) >= bottom(o) + height(o) / 2 and gap <= ``ABOVE_CONE`` * max(0, bottom(s) - top(o)): s rests on
        o (footprints overlap) or is higher up inside a 45 degree cone over it; ``beneath`` mirrored
next_to gap <= ``NEXT_TO_MAX_GAP`` * L, vertical extents overlap, neither above nor beneath
toward  s moving, angle between s's velocity and the direction to o <= ``TOWARD_MAX_ANGLE_DEG``, and the centre
        distance shrinks at >= ``TOWARD_MIN_RATE`` * L per second
away    s moving, angle >= 180 - ``TOWARD_MAX_ANGLE_DEG``, distance grows at >= ``TOWARD_MIN_RATE`` * L per second
past    s moving, abreast of o (footprint separation along s's direction <= ``PAST_MAX_ALONG`` * L), sideways gap
        <= ``PAST_MAX_SIDE`` * L, s overtakes or meets o (relative velocity along s's direction >= ``MOVING_MIN``
        * h(s) per second), and not ``with``
with    gap <= ``WITH_MAX_GAP`` * L, |v(s) - v(o)| <= ``WITH_MAX_REL_SPEED`` * L per second, and both moving or both
        animate (legged, creeper, swimmer)
======= ========================================================================================================

Predicate name = ``<action>_<spatial>`` if that name is in the vocabulary, else ``move_<spatial>`` if s is moving
and that name exists, else the plain ``<spatial>`` if it exists, else nothing (``labelling.combined_name``; with
``SynthConfig.layout_with_action=False`` left/right/front/behind are always the plain names).

Other predicates (``pair_predicates``):

======= ========================================================================================================
faster  both moving and speed(s) >= ``FASTER_MIN_RATIO`` * speed(o)
taller  current height(s) >= ``TALLER_MIN_RATIO`` * current height(o) (3D, posture included)
larger  standing volume w*h*l (s) >= ``LARGER_MIN_RATIO`` * volume(o) (3D, not image area)
follow  both moving, directions within ``FOLLOW_MAX_ANGLE_DEG``, o ahead of s along o's direction with footprint
        separation in [0, ``FOLLOW_MAX_GAP`` * L], sideways offset <= ``FOLLOW_MAX_SIDE`` * L; and not chase
chase   the follow geometry, s at or above its run threshold, and the distance shrinks at >= ``CHASE_MIN_RATE`` * L/s
ride    s sits or stands on o and o is a mount (horse, elephant, bicycle, motorcycle, skateboard)
======= ========================================================================================================

Actions and spatial patterns are debounced separately before they are combined: runs (on or off) shorter than
``MIN_RUN_S`` seconds (``ACTION_MIN_RUN_S`` for actions) are merged into their neighbours, as a person would not
label a 0.1 s flicker.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from offline_train.synthetic.camera import PinholeCamera, project_boxes
from offline_train.synthetic.categories import body_size, pair_size, profile
from offline_train.synthetic.world import WorldStates

MOVING_MIN = 0.1            # standing heights per second
FLY_MIN = 1.0               # standing heights above the ground
JUMP_MIN = 0.05             # standing heights above the ground
SIT_MAX, LIE_MAX = 0.8, 0.45    # current / standing height
STOP_MEMORY_S = 1.5         # s
MOTION_WINDOW_S = 1.0       # s
LR_MIN_SEP = 0.5            # mean image box widths
FRONT_MIN_DEPTH = 0.5       # pair sizes
ABOVE_CONE = 1.0            # horizontal gap per metre of height difference (45 degree cone)
NEXT_TO_MAX_GAP = 0.5       # pair sizes
TOWARD_MAX_ANGLE_DEG = 45.0
TOWARD_MIN_RATE = 0.2       # pair sizes per second
PAST_MAX_ALONG = 0.5        # pair sizes
PAST_MAX_SIDE = 2.0         # pair sizes
WITH_MAX_GAP = 1.0          # pair sizes
WITH_MAX_REL_SPEED = 0.5    # pair sizes per second
FASTER_MIN_RATIO = 1.5
TALLER_MIN_RATIO = 1.3
LARGER_MIN_RATIO = 3.0
FOLLOW_MAX_ANGLE_DEG = 45.0
FOLLOW_MAX_GAP = 4.0        # pair sizes
FOLLOW_MAX_SIDE = 1.0       # pair sizes
CHASE_MIN_RATE = 0.2        # pair sizes per second
MIN_RUN_S = 1.0             # s, spatial and pair patterns: VidVRD labels relations on ~1 s (30-frame) segments
ACTION_MIN_RUN_S = 0.3      # s, actions: a jump or a stop is short but real

ACTIONS = ("none", "stand", "stop", "walk", "run", "fly", "swim", "creep", "jump", "sit", "lie", "move")
SPATIAL = ("left", "right", "front", "behind", "above", "beneath", "next_to", "toward", "away", "past", "with")
PAIR = ("faster", "taller", "larger", "follow", "chase", "ride")
ANIMATE = ("legged", "creeper", "swimmer")


@dataclass(frozen=True, eq=False)
class Geometry:
    """Derived per-frame quantities the rules read (T frames, K agents; float64 unless said).

    world: the states. box: (T, K, 4) unclipped image xyxy px (NaN behind the camera). depth: (T, K) camera depth
    of the 3D centre, m. speed: (T, K) ground speed, m/s. moving: (T, K) bool. bottom, top: (T, K) m.
    h: (K,) standing height, m. pair: (K, K) pair size L, m. dist: (T, K, K) ground centre distance, m.
    gap: (T, K, K) footprint gap, m. rate: (T, K, K) d(dist)/dt over the motion window, m/s.
    """

    world: WorldStates
    box: np.ndarray
    depth: np.ndarray
    speed: np.ndarray
    moving: np.ndarray
    bottom: np.ndarray
    top: np.ndarray
    h: np.ndarray
    pair: np.ndarray
    dist: np.ndarray
    gap: np.ndarray
    rate: np.ndarray

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(profile(c).kind for c in self.world.categories)


def geometry(world: WorldStates, cam: PinholeCamera) -> Geometry:
    """Compute the ``Geometry`` of a world seen by ``cam``."""
    box, depth, _ = project_boxes(cam, world.pos, world.extent, world.heading)
    speed = np.hypot(world.vel[..., 0], world.vel[..., 2])
    h = world.dims[:, 1]
    ground = world.pos[..., [0, 2]]
    d = ground[:, None, :, :] - ground[:, :, None, :]                    # (T, s, o, 2): s -> o
    dist = np.hypot(d[..., 0], d[..., 1])
    bottom = world.pos[..., 1]
    size = body_size(world.dims)
    return Geometry(world, box, depth, speed, speed >= MOVING_MIN * h, bottom, bottom + world.extent[..., 1], h,
                    pair_size(size[:, None], size[None, :]), dist, footprint_gap(world), window_rate(dist, world.fps))


def footprint_gap(world: WorldStates) -> np.ndarray:
    """(T, K, K) separating-axis distance between the ground footprints (upright boxes from above), m."""
    ground = world.pos[..., [0, 2]]
    d = ground[:, None, :, :] - ground[:, :, None, :]
    gap = np.full(d.shape[:3], -np.inf)
    for axes_of in (1, 2):                   # the side directions of the subject's, then the object's footprint
        hd = world.heading[:, :, None] if axes_of == 1 else world.heading[:, None, :]
        for a in (hd, hd + 0.5 * math.pi):
            n = np.stack([np.cos(a), np.sin(a)], -1)
            sep = np.abs((d * n).sum(-1)) - _half_extent(world, n, 1) - _half_extent(world, n, 2)
            gap = np.maximum(gap, sep)
    return gap


def _half_extent(world: WorldStates, n: np.ndarray, which: int) -> np.ndarray:
    """Half the footprint extent along unit vectors n (T, K, K, 2) of the subject (which=1) or object (2)."""
    hd = world.heading[:, :, None] if which == 1 else world.heading[:, None, :]
    ext = world.extent[:, :, None, :] if which == 1 else world.extent[:, None, :, :]
    c, s = np.cos(hd), np.sin(hd)
    along = np.abs(c * n[..., 0] + s * n[..., 1])
    return 0.5 * ext[..., 2] * along + 0.5 * ext[..., 0] * np.sqrt(np.clip(1.0 - along ** 2, 0.0, 1.0))


def window_rate(x: np.ndarray, fps: float) -> np.ndarray:
    """Per-second rate of change of ``x`` (T, ...) over the last MOTION_WINDOW_S (first window for early frames)."""
    t = x.shape[0]
    w = min(max(1, round(MOTION_WINDOW_S * fps)), t - 1)
    end = np.maximum(np.arange(t), w)
    return (x[end] - x[end - w]) * (fps / w)


def run_threshold(g: Geometry) -> np.ndarray:
    """(K,) speed in m/s at and above which an agent counts as running (its category's ``run_threshold``)."""
    return np.array([profile(c).run_threshold for c in g.world.categories])


def _unit_velocity(g: Geometry) -> np.ndarray:
    v = g.world.vel[..., [0, 2]]
    return v / np.maximum(g.speed[..., None], 1e-9)


def _cos_to_object(g: Geometry) -> np.ndarray:
    """(T, s, o) cosine of the angle between s's velocity and the direction from s to o."""
    ground = g.world.pos[..., [0, 2]]
    d = ground[:, None, :, :] - ground[:, :, None, :]
    u = _unit_velocity(g)[:, :, None, :]
    return (d * u).sum(-1) / np.maximum(g.dist, 1e-9)


# ---------------------------------------------------------------------------------------------------- actions


def action_of(g: Geometry) -> np.ndarray:
    """(T, K) int8 index into ACTIONS for every agent and frame (module docstring table)."""
    w = g.world
    cats = w.categories
    kinds = np.array(g.kinds)
    flies = np.array([profile(c).flies for c in cats])
    run_at = run_threshold(g)
    frac = w.extent[..., 1] / g.h
    supported = w.support >= 0
    legged = kinds == "legged"
    memory = max(1, round(STOP_MEMORY_S * w.fps))
    was_moving = np.zeros_like(g.moving)
    for lag in range(1, memory + 1):
        was_moving[lag:] |= g.moving[:-lag]
    posture = np.where(frac <= LIE_MAX, ACTIONS.index("lie"), np.where(frac <= SIT_MAX, ACTIONS.index("sit"),
                                                                       ACTIONS.index("stand")))
    still = np.select([was_moving & (kinds != "object"), legged, kinds == "creeper"],
                      [ACTIONS.index("stop"), ACTIONS.index("stand"), ACTIONS.index("lie")], ACTIONS.index("none"))
    gait = np.select([legged & (g.speed >= run_at), legged, kinds == "creeper"],
                     [ACTIONS.index("run"), ACTIONS.index("walk"), ACTIONS.index("creep")], ACTIONS.index("move"))
    out = np.where(g.moving, gait, still)
    out = np.where(legged & ~supported & (posture != ACTIONS.index("stand")), posture, out)
    out = np.where(supported, posture, out)
    out = np.where(legged & ~supported & (g.bottom >= JUMP_MIN * g.h), ACTIONS.index("jump"), out)
    out = np.where(w.water & np.isin(kinds, ANIMATE) & (g.bottom < 0), ACTIONS.index("swim"), out)
    out = np.where(flies & (g.bottom >= FLY_MIN * g.h), ACTIONS.index("fly"), out)
    return out.astype(np.int8)


# ---------------------------------------------------------------------------------------------------- spatial


def left_of(g: Geometry) -> np.ndarray:
    """(T, s, o) bool: s is left of o in the image."""
    cx = 0.5 * (g.box[..., 0] + g.box[..., 2])
    wd = g.box[..., 2] - g.box[..., 0]
    with np.errstate(invalid="ignore"):
        return (cx[:, None, :] - cx[:, :, None]) >= LR_MIN_SEP * 0.5 * (wd[:, :, None] + wd[:, None, :])


def in_front_of(g: Geometry) -> np.ndarray:
    """(T, s, o) bool: s is nearer to the camera than o by a margin."""
    return (g.depth[:, None, :] - g.depth[:, :, None]) >= FRONT_MIN_DEPTH * g.pair


def above(g: Geometry) -> np.ndarray:
    """(T, s, o) bool: s is over o (on it, or higher up inside a 45 degree cone)."""
    bs = g.bottom[:, :, None]
    bo, to = g.bottom[:, None, :], g.top[:, None, :]
    return (bs >= bo + 0.5 * (to - bo)) & (g.gap <= ABOVE_CONE * np.maximum(0.0, bs - to))


def next_to(g: Geometry) -> np.ndarray:
    """(T, s, o) bool: close on the ground at the same level."""
    overlap = (g.bottom[:, :, None] < g.top[:, None, :]) & (g.bottom[:, None, :] < g.top[:, :, None])
    ab = above(g)
    return (g.gap <= NEXT_TO_MAX_GAP * g.pair) & overlap & ~ab & ~ab.transpose(0, 2, 1)


def toward(g: Geometry) -> np.ndarray:
    """(T, s, o) bool: s moves toward o and the distance shrinks."""
    cos_max = math.cos(math.radians(TOWARD_MAX_ANGLE_DEG))
    return g.moving[:, :, None] & (_cos_to_object(g) >= cos_max) & (-g.rate >= TOWARD_MIN_RATE * g.pair)


def away(g: Geometry) -> np.ndarray:
    """(T, s, o) bool: s moves away from o and the distance grows."""
    cos_max = math.cos(math.radians(TOWARD_MAX_ANGLE_DEG))
    return g.moving[:, :, None] & (_cos_to_object(g) <= -cos_max) & (g.rate >= TOWARD_MIN_RATE * g.pair)


def with_(g: Geometry) -> np.ndarray:
    """(T, s, o) bool: s and o are together (close, same velocity; both moving or both animate)."""
    dv = g.world.vel[..., [0, 2]]
    rel = np.hypot(*(dv[:, :, None, :] - dv[:, None, :, :]).transpose(3, 0, 1, 2))
    animate = np.isin(np.array(g.kinds), ANIMATE)
    both = (g.moving[:, :, None] & g.moving[:, None, :]) | (animate[:, None] & animate[None, :])
    return (g.gap <= WITH_MAX_GAP * g.pair) & (rel <= WITH_MAX_REL_SPEED * g.pair) & both


def past(g: Geometry) -> np.ndarray:
    """(T, s, o) bool: s goes past o (abreast, to the side, faster along s's direction)."""
    w = g.world
    u = _unit_velocity(g)[:, :, None, :]                                  # (T, s, 1, 2)
    side = np.stack([-u[..., 1], u[..., 0]], -1)
    ground = w.pos[..., [0, 2]]
    d = ground[:, None, :, :] - ground[:, :, None, :]
    along_sep = np.abs((d * u).sum(-1)) - _half_extent(w, np.broadcast_to(u, d.shape), 1) - _half_extent(
        w, np.broadcast_to(u, d.shape), 2)
    side_sep = np.abs((d * side).sum(-1)) - _half_extent(w, np.broadcast_to(side, d.shape), 1) - _half_extent(
        w, np.broadcast_to(side, d.shape), 2)
    v = w.vel[..., [0, 2]]
    rel_along = ((v[:, :, None, :] - v[:, None, :, :]) * u).sum(-1)
    return (g.moving[:, :, None] & (along_sep <= PAST_MAX_ALONG * g.pair) & (side_sep <= PAST_MAX_SIDE * g.pair)
            & (rel_along >= MOVING_MIN * g.h[None, :, None]) & ~with_(g))


def spatial_patterns(g: Geometry) -> dict[str, np.ndarray]:
    """Every spatial pattern of SPATIAL as a (T, s, o) bool array (diagonal False)."""
    lf, fr, ab = left_of(g), in_front_of(g), above(g)
    out = {"left": lf, "right": lf.transpose(0, 2, 1), "front": fr, "behind": fr.transpose(0, 2, 1),
           "above": ab, "beneath": ab.transpose(0, 2, 1), "next_to": next_to(g), "toward": toward(g),
           "away": away(g), "past": past(g), "with": with_(g)}
    eye = np.eye(g.h.shape[0], dtype=bool)
    return {k: v & ~eye for k, v in out.items()}


# ---------------------------------------------------------------------------------------------------- pair


def faster(g: Geometry) -> np.ndarray:
    """(T, s, o) bool: both moving and s is much faster."""
    both = g.moving[:, :, None] & g.moving[:, None, :]
    return both & (g.speed[:, :, None] >= FASTER_MIN_RATIO * g.speed[:, None, :])


def taller(g: Geometry) -> np.ndarray:
    """(T, s, o) bool: s's current 3D height is clearly larger."""
    hh = g.world.extent[..., 1]
    return hh[:, :, None] >= TALLER_MIN_RATIO * hh[:, None, :]


def larger(g: Geometry) -> np.ndarray:
    """(T, s, o) bool: s's standing 3D volume is clearly larger."""
    vol = g.world.dims.prod(-1)
    out = vol[:, None] >= LARGER_MIN_RATIO * vol[None, :]
    return np.broadcast_to(out, g.dist.shape).copy()


def _follow_geometry(g: Geometry) -> np.ndarray:
    w = g.world
    u = _unit_velocity(g)
    uo = u[:, None, :, :]                                                  # o's direction (T, 1, o, 2)
    cos_dir = (u[:, :, None, :] * uo).sum(-1)
    ground = w.pos[..., [0, 2]]
    d = ground[:, None, :, :] - ground[:, :, None, :]                     # s -> o
    uo_b = np.broadcast_to(uo, d.shape)
    ahead = (d * uo_b).sum(-1)
    sep = ahead - _half_extent(w, uo_b, 1) - _half_extent(w, uo_b, 2)
    side = np.abs(d[..., 0] * uo_b[..., 1] - d[..., 1] * uo_b[..., 0])
    return (g.moving[:, :, None] & g.moving[:, None, :] & (cos_dir >= math.cos(math.radians(FOLLOW_MAX_ANGLE_DEG)))
            & (sep >= 0) & (sep <= FOLLOW_MAX_GAP * g.pair) & (side <= FOLLOW_MAX_SIDE * g.pair))


def chase(g: Geometry) -> np.ndarray:
    """(T, s, o) bool: s runs after o and gains on it."""
    return _follow_geometry(g) & (g.speed >= run_threshold(g))[:, :, None] & (-g.rate >= CHASE_MIN_RATE * g.pair)


def follow(g: Geometry) -> np.ndarray:
    """(T, s, o) bool: s goes behind o in o's direction, not chasing."""
    return _follow_geometry(g) & ~chase(g)


def ride(g: Geometry) -> np.ndarray:
    """(T, s, o) bool: s sits or stands on o and o is a mount."""
    k = g.h.shape[0]
    mount = np.array([profile(c).mount > 0 for c in g.world.categories])
    on = g.world.support[:, :, None] == np.arange(k)[None, None, :]
    return on & mount[None, None, :]


def pair_predicates(g: Geometry) -> dict[str, np.ndarray]:
    """Every predicate of PAIR as a (T, s, o) bool array (diagonal False)."""
    eye = np.eye(g.h.shape[0], dtype=bool)
    out = {"faster": faster(g), "taller": taller(g), "larger": larger(g), "follow": follow(g), "chase": chase(g),
           "ride": ride(g)}
    return {k: v & ~eye for k, v in out.items()}
