"""Random scenario sampling: a setting, its camera, and K agent plans with solo and pairwise behaviours.

Every random choice of a video is made here from one ``numpy.random.Generator`` (plus heading drift in
``world.simulate``), so a seed fixes the whole video.

Solo behaviours by kind (probabilities are the defaults below):

* legged: idle with a posture (stand / sit / lie), walk or run about (``wander``); birds also fly;
* creeper: idle (lying) or creep about; swimmer: swim about; object: lie still, or be rolled (ball) or thrown
  (frisbee); vehicle: drive across (``cross``) or stay parked; airplanes also fly across; riderless bicycles,
  motorcycles and skateboards stay parked.
* a moving agent may stop part-way (giving "stop"), an idle one may set off; a bird may land or take off.

Pair behaviours (subject = the new agent, object = an earlier agent): ride (person/monkey on a mount), rest (on a
sofa), chase (the object flees, or is a rolled ball / thrown frisbee), follow, approach, depart, pass (flyers pass
over), with (side by side).
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from offline_train.synthetic.camera import PinholeCamera
from offline_train.synthetic.categories import (RESTERS, RIDERS, SETTINGS, SINGLE, SOFA_SEAT_M, Setting, body_size,
                                                pair_size, profile)
from offline_train.synthetic.world import AgentPlan, Behaviour

P_INTERACT = 0.65      # probability that a new agent (not the first) interacts with an earlier one
P_SWITCH = 0.35        # probability that a solo behaviour changes once during the video
P_CARRY = 0.6          # probability that a new mount gets a rider, a new sofa someone sitting or lying on it
PAIR_MODES = ("ride", "rest", "chase", "follow", "approach", "depart", "pass", "with")
FOLLOWING_VEHICLES = ("car", "bus", "motorcycle", "watercraft")
PARKED_ONLY = ("bicycle", "motorcycle", "skateboard")


def sample_scenario(rng: np.random.Generator, frames: int, fps: float, n_agents: tuple[int, int],
                    camera: PinholeCamera) -> tuple[Setting, PinholeCamera, list[AgentPlan]]:
    """Draw a setting, place its camera and draw ``n_agents[0]..n_agents[1]`` agent plans (targets come first)."""
    lo, hi = n_agents
    if not 1 <= lo <= hi:
        raise ValueError(f"n_agents must satisfy 1 <= min <= max, got {n_agents}")
    st = SETTINGS[int(rng.integers(len(SETTINGS)))]
    cam = replace(camera, height_m=st.camera_height, pitch_deg=st.pitch_deg)
    s = _Sampler(rng, st, cam, frames, fps)
    n = int(rng.integers(lo, hi + 1))
    while len(s.cats) < n:
        s.add_agent(room=n - len(s.cats))
    return st, cam, s.plans()


class _Sampler:
    """Builds agent plans one by one; may rewrite an earlier agent's plan when an interaction needs it to move."""

    def __init__(self, rng, st: Setting, cam: PinholeCamera, frames: int, fps: float):
        self.rng, self.st, self.cam, self.frames, self.fps = rng, st, cam, frames, fps
        self.cats: list[str] = []
        self.start: list[list[float]] = []
        self.heading: list[float] = []
        self.speed: list[float] = []
        self.segs: list[list[tuple[int, Behaviour]]] = []
        self.jumps: list[tuple[int, ...]] = []
        self.scale: list[float] = []
        self.attached: list[bool] = []
        self.carried: list[int] = []        # riders / resters on each agent
        names = sorted(st.weights)
        w = np.array([st.weights[n] for n in names], np.float64)
        self.names, self.weights = names, w / w.sum()

    def plans(self) -> list[AgentPlan]:
        return [AgentPlan(c, tuple(p), h, v, tuple(sg), j, sc) for c, p, h, v, sg, j, sc in
                zip(self.cats, self.start, self.heading, self.speed, self.segs, self.jumps, self.scale)]

    # ------------------------------------------------------------------ helpers
    def stage_point(self) -> list[float]:
        z0, z1 = self.st.depth
        z = z0 * (z1 / z0) ** self.rng.uniform(0.05, 0.95)     # log-uniform: more agents near the camera
        x = self.rng.uniform(-0.7, 0.7) * self.cam.half_width_at(z)
        return [x, 0.0, z]

    def gait(self, cat: str, fast_p: float = 0.3) -> float:
        pr = profile(cat)
        if self.rng.random() < fast_p:
            return pr.run * self.rng.uniform(0.8, 1.0)
        return pr.walk * self.rng.uniform(0.8, 1.2)

    def lateral_heading(self) -> float:
        if self.rng.random() < 0.25:                          # along the optical axis, towards or away
            return (1 if self.rng.random() < 0.5 else -1) * math.pi / 2 + self.rng.normal(0, 0.2)
        return (0.0 if self.rng.random() < 0.5 else math.pi) + self.rng.normal(0, 0.3)

    def fly_altitude(self, cat: str) -> float:
        if cat == "airplane":
            return self.rng.uniform(20.0, 80.0)
        return self.rng.uniform(1.0, 3.0) * self.cam.height_m

    def pair_size(self, i: int, j: int) -> float:
        return float(pair_size(body_size(np.array(profile(self.cats[i]).size) * self.scale[i]),
                               body_size(np.array(profile(self.cats[j]).size) * self.scale[j])))

    def crossing_speed(self, heading: float, speed: float) -> float:
        """``speed`` capped so that travel along the optical axis stays within the stage depth for the video."""
        z0, z1 = self.st.depth
        along = abs(math.sin(heading)) * speed * self.frames / self.fps
        return speed if along <= 0.8 * (z1 - z0) else speed * 0.8 * (z1 - z0) / along

    def crossing_start(self, mid: list[float], heading: float, speed: float, at: float) -> list[float]:
        """Start point such that an agent at ``speed`` along ``heading`` is at ``mid`` after ``at`` frames."""
        d = speed * at / self.fps
        return [mid[0] - d * math.cos(heading), mid[1], mid[2] - d * math.sin(heading)]

    def random_jumps(self, cat: str) -> tuple[int, ...]:
        pr = profile(cat)
        n = int(self.rng.poisson(pr.jumpy * self.frames / self.fps))
        last = max(2, self.frames - round(0.6 * self.fps))
        return tuple(sorted(int(f) for f in self.rng.integers(1, last, size=n)))

    # ------------------------------------------------------------------ agents
    def new_agent(self, cat: str) -> int:
        scale = self.rng.uniform(0.85, 1.15)
        if cat == "person" and self.rng.random() < 0.15:
            scale = self.rng.uniform(0.6, 0.8)                  # children
        self.cats.append(cat), self.scale.append(scale), self.jumps.append(())
        self.start.append(self.stage_point()), self.heading.append(self.rng.uniform(-math.pi, math.pi))
        self.speed.append(0.0), self.segs.append([]), self.attached.append(False), self.carried.append(0)
        return len(self.cats) - 1

    def add_agent(self, room: int) -> None:
        """Add one agent (two when a mount or sofa gets its rider or sitter; ``room`` = agents still allowed)."""
        cat = str(self.rng.choice(self.names, p=self.weights))
        while cat in SINGLE and cat in self.cats:
            cat = str(self.rng.choice(self.names, p=self.weights))
        i = self.new_agent(cat)
        options = self.pair_options(i) if i else []
        if options and self.rng.random() < P_INTERACT:
            mode, j = options[int(self.rng.integers(len(options)))]
            self.pair(i, mode, j)
            return
        self.solo(i)
        carriers = RIDERS if profile(cat).mount > 0 and not self.st.water else RESTERS if cat == "sofa" else ()
        carriers = [c for c in carriers if c in self.st.weights]
        if room >= 2 and carriers and self.rng.random() < P_CARRY:
            rider = self.new_agent(str(self.rng.choice(carriers)))
            self.pair(rider, "ride" if cat != "sofa" else "rest", i)

    def solo(self, i: int) -> None:
        cat, pr, r = self.cats[i], profile(self.cats[i]), self.rng
        T = self.frames
        if pr.kind == "legged":
            if pr.flies and r.random() < 0.5:
                seg = Behaviour("fly", speed=pr.fly * r.uniform(0.5, 1.0), altitude=self.fly_altitude(cat))
                self.start[i][1] = seg.altitude
                self.speed[i] = seg.speed
            elif r.random() < 0.35:
                posture = str(r.choice(["stand", "sit", "lie"], p=[0.6, 0.25, 0.15]))
                seg = Behaviour("idle", posture=posture)
            else:
                seg = Behaviour("wander", speed=self.gait(cat))
                self.speed[i] = seg.speed
            if seg.mode != "fly" and not self.st.water:
                self.jumps[i] = self.random_jumps(cat)
        elif pr.kind in ("creeper", "swimmer"):
            seg = Behaviour("wander", speed=self.gait(cat)) if r.random() < 0.7 else Behaviour("idle")
            self.speed[i] = seg.speed
        elif pr.kind == "vehicle":
            if cat in PARKED_ONLY or (cat != "train" and r.random() < 0.25):
                seg = Behaviour("idle")
            else:
                h = self.lateral_heading() if cat != "train" else (0.0 if r.random() < 0.5 else math.pi)
                flying = cat == "airplane" and r.random() < 0.6
                v = pr.fly * r.uniform(0.7, 1.0) if flying else self.crossing_speed(h, r.uniform(pr.walk, pr.run))
                mid = self.stage_point()
                if flying:
                    mid[1] = self.fly_altitude(cat)
                seg = Behaviour("cross", speed=v, heading=h, altitude=mid[1])
                self.start[i] = self.crossing_start(mid, h, v, r.uniform(0.3, 0.7) * T)
                self.heading[i], self.speed[i] = h, v
        else:
            h = self.lateral_heading()
            if cat == "ball" and r.random() < 0.5:
                seg = Behaviour("rolled", speed=r.uniform(2.0, 5.0), heading=h)
            elif cat == "frisbee" and r.random() < 0.7:
                seg = Behaviour("thrown", speed=r.uniform(5.0, 9.0), heading=h, altitude=r.uniform(1.0, 1.8))
                self.start[i][1] = seg.altitude
            else:
                seg = Behaviour("idle")
            self.heading[i], self.speed[i] = h, seg.speed
        self.segs[i] = [(0, seg)]
        if r.random() < P_SWITCH and pr.kind != "object" and cat not in ("train", "airplane", "whale"):
            self.add_switch(i, seg)

    def add_switch(self, i: int, seg: Behaviour) -> None:
        """One change of behaviour part-way: stop, set off, land or take off."""
        cat, pr, r = self.cats[i], profile(self.cats[i]), self.rng
        at = int(r.uniform(0.35, 0.75) * self.frames)
        if seg.mode in ("wander", "cross"):
            self.segs[i].append((at, Behaviour("idle")))
        elif seg.mode == "fly" and cat == "bird":
            self.segs[i].append((at, Behaviour("idle")))
        elif seg.mode == "idle" and seg.posture == "stand" and cat not in PARKED_ONLY:
            if pr.flies and r.random() < 0.5:
                self.segs[i].append((at, Behaviour("fly", speed=pr.fly * r.uniform(0.5, 1.0),
                                                   altitude=self.fly_altitude(cat))))
            else:
                self.segs[i].append((at, Behaviour("wander", speed=self.gait(cat))))

    def pair_options(self, i: int) -> list[tuple[str, int]]:
        cat, pr = self.cats[i], profile(self.cats[i])
        mobile = pr.kind in ("legged", "creeper", "swimmer") or cat in FOLLOWING_VEHICLES
        out = []
        for j in range(i):
            cj, pj = self.cats[j], profile(self.cats[j])
            if self.attached[j]:
                continue
            if cat in RIDERS and pj.mount > 0 and self.carried[j] == 0 and not self.st.water:
                out += [("ride", j)] * 3
            if cat in RESTERS and cj == "sofa" and self.carried[j] < 2:
                out += [("rest", j)] * 3
            if not mobile:
                continue
            if pr.kind == "legged" and (pj.kind == "legged" or cj in ("ball", "frisbee")) and not pr.flies:
                out.append(("chase", j))
            if (pr.kind == "legged" and pj.kind == "legged") or (cat in FOLLOWING_VEHICLES and
                                                                 cj in FOLLOWING_VEHICLES):
                out += [("follow", j), ("with", j)] if pr.kind == "legged" else [("follow", j)]
            out += [("approach", j), ("depart", j)]
            if self.segs[j][0][1].mode in ("idle", "cross"):     # a predictable path to pass by
                out.append(("pass", j))
        return out

    def make_moving(self, j: int, fast: bool) -> None:
        """Rewrite agent j's plan so that it travels for the whole video (a mount, a leader, a passer-by)."""
        cj, pj = self.cats[j], profile(self.cats[j])
        if self.segs[j] and self.segs[j][0][1].mode != "idle":
            self.segs[j], self.jumps[j] = self.segs[j][:1], ()
            return
        v = (pj.run * 0.8 if fast else pj.walk) * self.rng.uniform(0.9, 1.1)
        self.start[j] = self.stage_point()
        self.start[j][1] = 0.0
        if pj.kind == "vehicle":
            h = self.lateral_heading()
            v = self.crossing_speed(h, v)
            mid = self.stage_point()
            self.start[j] = self.crossing_start(mid, h, v, self.rng.uniform(0.3, 0.7) * self.frames)
            self.segs[j], self.heading[j] = [(0, Behaviour("cross", speed=v, heading=h))], h
        else:
            self.segs[j] = [(0, Behaviour("wander", speed=v))]
        self.speed[j], self.jumps[j] = v, ()

    def pair(self, i: int, mode: str, j: int) -> None:
        cat, pr, r, T = self.cats[i], profile(self.cats[i]), self.rng, self.frames
        cj = self.cats[j]
        pair = self.pair_size(i, j)
        radii = 0.5 * (max(pr.size[0], pr.size[2]) * self.scale[i] + max(profile(cj).size[::2]) * self.scale[j])
        if mode == "ride":
            if r.random() < 0.8:
                self.make_moving(j, fast=cj == "horse" and r.random() < 0.3)
            else:
                self.segs[j] = [(0, Behaviour("idle"))]
            self.jumps[j] = ()
            seat = profile(cj).mount * profile(cj).height * self.scale[j]
            b = Behaviour("ride", j, altitude=seat, posture="stand" if cj == "skateboard" else "sit")
            self.attached[i], self.carried[j] = True, self.carried[j] + 1
        elif mode == "rest":
            side = 0.45 * (1 if self.carried[j] == 0 else -1) * self.scale[j]
            b = Behaviour("rest", j, altitude=SOFA_SEAT_M * self.scale[j],
                          posture="sit" if r.random() < 0.6 else "lie", offset=side)
            self.attached[i], self.carried[j] = True, self.carried[j] + 1
        elif mode == "with":
            widths = 0.5 * (pr.size[0] * self.scale[i] + profile(cj).size[0] * self.scale[j])
            side = (1 if r.random() < 0.5 else -1) * (widths + r.uniform(0.1, 0.5) * pair)
            b = Behaviour("with", j, offset=side)
            self.attached[i] = True
        elif mode == "chase":
            pj = profile(cj)
            v = pr.run * r.uniform(0.85, 1.0)
            h = r.uniform(-math.pi, math.pi)
            if cj == "ball":
                self.segs[j] = [(0, Behaviour("rolled", speed=min(0.8 * v, 5.0), heading=h))]
                self.speed[j] = min(0.8 * v, 5.0)
            elif cj == "frisbee":
                self.segs[j] = [(0, Behaviour("thrown", speed=min(0.9 * v, 8.0), heading=h, altitude=1.4))]
                self.start[j][1], self.speed[j] = 1.4, min(0.9 * v, 8.0)
            else:
                fv = min(pj.run * r.uniform(0.8, 1.0), 0.8 * v)
                self.segs[j], self.speed[j], self.jumps[j] = [(0, Behaviour("flee", i, speed=fv))], fv, ()
                self.start[j] = self.stage_point()
            self.heading[j] = h
            d = r.uniform(3.0, 6.0) * pair
            self.start[i] = [self.start[j][0] - d * math.cos(h), 0.0, self.start[j][2] - d * math.sin(h)]
            self.heading[i], self.speed[i] = h, 0.8 * v
            b = Behaviour("chase", j, speed=v)
        elif mode == "follow":
            self.make_moving(j, fast=r.random() < 0.2)
            hj, d = self.heading[j], radii + r.uniform(1.0, 2.5) * pair
            self.start[i] = [self.start[j][0] - d * math.cos(hj), 0.0, self.start[j][2] - d * math.sin(hj)]
            self.heading[i], self.speed[i] = hj, self.speed[j]
            b = Behaviour("follow", j, offset=d)
        elif mode == "approach":
            d, a = radii + r.uniform(3.0, 8.0) * pair, r.uniform(-math.pi, math.pi)
            self.start[i] = [self.start[j][0] + d * math.cos(a), 0.0, self.start[j][2] + d * math.sin(a)]
            v = self.gait(cat)
            self.heading[i], self.speed[i] = a + math.pi, v
            b = Behaviour("approach", j, speed=v)
        elif mode == "depart":
            d, a = radii + r.uniform(0.1, 0.5) * pair, r.uniform(-math.pi, math.pi)
            self.start[i] = [self.start[j][0] + d * math.cos(a), 0.0, self.start[j][2] + d * math.sin(a)]
            v = self.gait(cat)
            self.heading[i], self.speed[i] = a, v
            b = Behaviour("depart", j, speed=v)
        else:  # pass: a straight line that comes closest to j (idle or crossing) at a random time
            h = self.lateral_heading()
            at = r.uniform(0.3, 0.7) * T
            bj = self.segs[j][0][1]
            until = min([at] + [f for f, _ in self.segs[j][1:]])
            travel = bj.speed * until / self.fps if bj.mode == "cross" else 0.0
            xj = self.start[j][0] + travel * math.cos(bj.heading)
            zj = self.start[j][2] + travel * math.sin(bj.heading)
            side = (1 if r.random() < 0.5 else -1) * (radii + r.uniform(0.3, 1.5) * pair)
            mid = [xj - side * math.sin(h), 0.0, zj + side * math.cos(h)]
            flying = pr.flies and r.random() < 0.7
            v = pr.fly * r.uniform(0.5, 0.9) if flying else self.crossing_speed(h, self.gait(cat))
            if flying:
                mid = [xj, self.fly_altitude(cat), zj]
            self.start[i] = self.crossing_start(mid, h, v, at)
            self.heading[i], self.speed[i] = h, v
            b = Behaviour("cross", j, speed=v, heading=h, altitude=mid[1])
        self.segs[i] = [(0, b)]
