"""Per-category physical profiles (size, gait speeds, locomotion kind) and the scene settings that group them.

Units: metres and metres per second. ``size`` is the standing 3D extent (width, height, length): width across the
direction of travel, height vertical, length along the direction of travel.

Locomotion kinds (they decide which action names a category can get, see ``rules.py``):

========  ===================================================================================================
legged    walks / runs / stands / sits / lies / jumps on the ground (people, mammals, birds on the ground)
creeper   creeps; lies when still (snake, lizard, turtle on land)
swimmer   swims; only exists in water settings (whale)
vehicle   moves / stops; parked when never moved (car, bus, train, motorcycle, bicycle, watercraft, skateboard,
          airplane on the ground)
object    no locomotion of its own; moves when thrown or rolled (ball, frisbee, sofa)
========  ===================================================================================================

``walk`` is the usual travelling speed (cruise speed for vehicles), ``run`` the fast one; the rules call a legged
agent "running" at or above the midpoint of the two (``run_threshold``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("legged", "creeper", "swimmer", "vehicle", "object")


@dataclass(frozen=True)
class CategoryProfile:
    """Physical profile of one VidVRD object category.

    size:      (width, height, length) standing extent, m.
    walk, run: typical slow and fast ground speeds, m/s (flyers use ``fly`` in the air).
    flies:     can be airborne (bird, airplane, frisbee); ``fly`` is its airspeed, m/s.
    mount:     seat height as a fraction of its height if a person or monkey can ride it, else 0.
    jumpy:     probability per second of a spontaneous jump while on the ground (legged only).
    """

    name: str
    kind: str
    size: tuple[float, float, float]
    walk: float
    run: float
    flies: bool = False
    fly: float = 0.0
    mount: float = 0.0
    jumpy: float = 0.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"category {self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        if len(self.size) != 3 or min(self.size) <= 0:
            raise ValueError(f"category {self.name}: size must be three positive metres, got {self.size}")
        if not 0 <= self.walk <= self.run:
            raise ValueError(f"category {self.name}: need 0 <= walk <= run, got {self.walk}, {self.run}")

    @property
    def height(self) -> float:
        return self.size[1]

    @property
    def run_threshold(self) -> float:
        """Speed (m/s) at and above which a legged agent is labelled as running: midpoint of walk and run."""
        return 0.5 * (self.walk + self.run)


_P = CategoryProfile
PROFILES: dict[str, CategoryProfile] = {p.name: p for p in (
    _P("person", "legged", (0.5, 1.7, 0.3), 1.3, 3.8, jumpy=0.04),
    _P("dog", "legged", (0.3, 0.6, 0.9), 1.2, 5.0, jumpy=0.04),
    _P("domestic_cat", "legged", (0.2, 0.3, 0.5), 0.7, 3.5, jumpy=0.05),
    _P("horse", "legged", (0.6, 1.6, 2.4), 1.6, 7.0, mount=0.8),
    _P("cattle", "legged", (0.7, 1.5, 2.4), 1.0, 4.0),
    _P("sheep", "legged", (0.5, 0.9, 1.2), 0.9, 4.0, jumpy=0.02),
    _P("antelope", "legged", (0.5, 1.3, 1.5), 1.2, 8.0, jumpy=0.05),
    _P("zebra", "legged", (0.6, 1.4, 2.3), 1.3, 7.0),
    _P("elephant", "legged", (2.5, 3.0, 5.5), 1.2, 4.0, mount=0.9),
    _P("lion", "legged", (0.6, 1.1, 2.0), 1.2, 8.0),
    _P("tiger", "legged", (0.6, 1.0, 2.5), 1.2, 8.0),
    _P("bear", "legged", (1.0, 1.2, 2.0), 1.0, 5.0),
    _P("fox", "legged", (0.3, 0.5, 0.9), 1.1, 5.0, jumpy=0.04),
    _P("giant_panda", "legged", (0.9, 1.0, 1.6), 0.6, 2.0),
    _P("red_panda", "legged", (0.3, 0.4, 0.6), 0.6, 2.5, jumpy=0.04),
    _P("monkey", "legged", (0.4, 0.6, 0.5), 0.8, 3.5, jumpy=0.15),
    _P("rabbit", "legged", (0.2, 0.3, 0.4), 0.4, 4.0, jumpy=0.2),
    _P("squirrel", "legged", (0.1, 0.2, 0.25), 0.4, 3.0, jumpy=0.15),
    _P("hamster", "legged", (0.06, 0.06, 0.12), 0.1, 0.5, jumpy=0.02),
    _P("bird", "legged", (0.2, 0.2, 0.3), 0.2, 0.8, flies=True, fly=6.0, jumpy=0.05),
    _P("snake", "creeper", (0.1, 0.1, 1.5), 0.4, 1.2),
    _P("lizard", "creeper", (0.06, 0.06, 0.3), 0.2, 1.5),
    _P("turtle", "creeper", (0.6, 0.3, 0.8), 0.1, 0.3),
    _P("whale", "swimmer", (3.0, 3.0, 12.0), 1.5, 4.0),
    _P("car", "vehicle", (1.8, 1.5, 4.5), 6.0, 14.0),
    _P("bus", "vehicle", (2.5, 3.2, 12.0), 5.0, 12.0),
    _P("train", "vehicle", (3.0, 4.0, 60.0), 8.0, 20.0),
    _P("motorcycle", "vehicle", (0.8, 1.2, 2.1), 6.0, 15.0, mount=0.6),
    _P("bicycle", "vehicle", (0.6, 1.1, 1.8), 3.0, 7.0, mount=0.8),
    _P("skateboard", "vehicle", (0.25, 0.1, 0.8), 2.0, 5.0, mount=1.0),
    _P("watercraft", "vehicle", (2.5, 2.0, 6.0), 3.0, 9.0),
    _P("airplane", "vehicle", (30.0, 10.0, 35.0), 8.0, 20.0, flies=True, fly=60.0),
    _P("ball", "object", (0.22, 0.22, 0.22), 0.0, 0.0),
    _P("frisbee", "object", (0.25, 0.1, 0.25), 0.0, 0.0, flies=True, fly=7.0),   # tilted disc: 0.1 m tall
    _P("sofa", "object", (0.9, 0.85, 2.0), 0.0, 0.0),
)}
SINGLE = ("train", "sofa")              # at most one of these per video
RIDERS = ("person", "monkey")          # categories that ride mounts (``mount > 0``)
SOFA_SEAT_M = 0.45                     # seat height of a sofa, m (what a person or pet sits or lies on)
RESTERS = ("person", "dog", "domestic_cat", "monkey", "red_panda")   # categories that sit / lie on a sofa


@dataclass(frozen=True)
class Setting:
    """A kind of scene: which categories appear (with draw weights), where the camera is, how deep the stage is.

    camera_height: m above the ground (or water surface). pitch_deg: downward camera tilt, degrees.
    depth: (near, far) range of the stage along the optical axis, m; agents start and wander inside it.
    water: the ground plane is a water surface; non-vehicle agents at altitude <= 0 swim.
    """

    name: str
    weights: dict
    camera_height: float
    pitch_deg: float
    depth: tuple[float, float]
    water: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("street", {"person": 4, "car": 3, "bus": 1, "motorcycle": 2, "bicycle": 1, "dog": 1, "skateboard": 1,
                       "bird": 0.5}, 1.6, 5.0, (5.0, 28.0)),
    Setting("park", {"person": 4, "dog": 2, "frisbee": 1, "ball": 1, "squirrel": 1, "bird": 1, "bicycle": 1,
                     "skateboard": 1, "rabbit": 0.5, "horse": 0.5}, 1.6, 6.0, (4.0, 20.0)),
    Setting("pasture", {"horse": 2, "cattle": 2, "sheep": 2, "person": 2, "dog": 1, "fox": 0.5, "bird": 0.5},
            1.6, 4.0, (6.0, 35.0)),
    Setting("savanna", {"antelope": 2, "zebra": 2, "elephant": 2, "lion": 2, "tiger": 1, "cattle": 0.5,
                        "car": 0.5, "bird": 0.5}, 2.0, 3.0, (10.0, 50.0)),
    Setting("zoo", {"giant_panda": 2, "red_panda": 2, "monkey": 2, "bear": 2, "tiger": 1, "person": 1},
            1.6, 6.0, (4.0, 18.0)),
    Setting("home", {"person": 3, "domestic_cat": 2, "dog": 2, "sofa": 2, "ball": 1}, 1.3, 12.0, (2.0, 7.0)),
    Setting("terrarium", {"hamster": 2, "lizard": 2, "snake": 2, "turtle": 1, "rabbit": 1, "squirrel": 1},
            0.35, 15.0, (0.6, 3.0)),
    Setting("water", {"whale": 2, "watercraft": 3, "person": 2, "bird": 1}, 2.5, 5.0, (8.0, 45.0), water=True),
    Setting("airfield", {"airplane": 3, "car": 1, "bus": 1, "person": 1}, 1.8, 2.0, (25.0, 150.0)),
    Setting("railway", {"train": 2, "person": 2, "car": 1, "bird": 0.5}, 1.6, 3.0, (15.0, 70.0)),
)


def body_size(dims) -> np.ndarray:
    """Body size (m) of agents with standing extents ``dims`` (..., 3) = (width, height, length): the larger of
    height and length, so that a snake (long) and a person (tall) both get a sensible scale."""
    d = np.asarray(dims, dtype=np.float64)
    return np.maximum(d[..., 1], d[..., 2])


def pair_size(size_a, size_b) -> np.ndarray:
    """Pair size L (m): geometric mean of two body sizes; every distance threshold of the rules is a multiple of it
    (person-person 1.7 m, person-dog 1.2 m, person-car 2.8 m, person-train 10 m, hamster-cat 0.24 m)."""
    return np.sqrt(np.asarray(size_a, dtype=np.float64) * np.asarray(size_b, dtype=np.float64))


def profile(name: str) -> CategoryProfile:
    """The profile of category ``name``; an unknown name raises ValueError."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown category '{name}' (known: {sorted(PROFILES)})") from None


def setting(name: str) -> Setting:
    for s in SETTINGS:
        if s.name == name:
            return s
    raise ValueError(f"unknown setting '{name}' (known: {[s.name for s in SETTINGS]})")
