"""Overlay layout: where each label, arrow and the relation panel of one frame go (no drawing, no video).

Readability rules (what a viewer of real footage needs):

* every text label sits on a dark plate and no two labels overlap, nor the relation panel, nor the status line;
  labels are placed greedily by importance (entities in a relation first, then by score) at the first free
  position around their box or along their arrow, and a label that finds no free place is shortened to the bare
  track id or dropped (its box or arrow is still drawn);
* one straight arrow per entity pair: one head when one direction holds, heads at both ends when both do, labelled
  ``ride`` (one way) or ``3>5 ride  5>3 carry`` (both ways) with the strongest predicate of each direction;
* the relation panel lists the strongest relations ``subject predicate object score`` and sits in the corner that
  covers the fewest boxes, moving only when another corner is clearly better (no flicker).

Geometry: boxes are xyxy float pixels of the overlay frame (origin top-left); label rectangles are integer
``(x0, y0, x1, y1)`` with x1/y1 exclusive. Drawing is engine.io.overlay's (OverlayRenderer, OverlayWriter).
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field

import numpy as np

from engine.types import SceneGraph

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 integer pixels, x1/y1 exclusive
FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX, kept here so layout code needs no cv2 attribute lookups


def color_of(track_id: int) -> tuple[int, int, int]:
    """BGR colour of a track: golden-ratio hue steps, so neighbouring ids get clearly different colours."""
    r, g, b = colorsys.hsv_to_rgb((track_id * 0.618033988749895) % 1.0, 0.75, 0.95)
    return int(b * 255), int(g * 255), int(r * 255)


def overlaps(a: Rect, b: Rect) -> bool:
    """True when two half-open integer rectangles share at least one pixel."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _overlap_area(a: Rect, b) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


@dataclass(frozen=True)
class Label:
    """One text label: ``rect`` is its plate (pixels, half-open); the text baseline starts at ``org``."""

    text: str
    rect: Rect
    org: tuple[int, int]
    color: tuple[int, int, int]


@dataclass(frozen=True)
class Arrow:
    """One relation arrow between two entities: ``p0 -> p1`` in pixels; heads at p1 (``head_end``) and/or p0."""

    pair: tuple[int, int]  # (lower id, higher id)
    p0: tuple[int, int]
    p1: tuple[int, int]
    head_start: bool
    head_end: bool
    color: tuple[int, int, int]


@dataclass
class OverlayLayout:
    """Where everything of one frame goes. ``panel`` is None when there are no relations to list."""

    size: tuple[int, int]  # (width, height) px
    entity_labels: dict[int, Label] = field(default_factory=dict)
    arrow_labels: dict[tuple[int, int], Label] = field(default_factory=dict)
    arrows: list[Arrow] = field(default_factory=list)
    panel: Rect | None = None
    panel_lines: list[Label] = field(default_factory=list)
    status: Label | None = None
    corner: int = 0

    def labels(self) -> list[Label]:
        """Every placed text label of the frame (entities, arrows, status); the panel is separate."""
        return [*self.entity_labels.values(), *self.arrow_labels.values(), *([self.status] if self.status else [])]


class TextMetrics:
    """Text metrics for one font scale, so the layout knows each label's plate before drawing anything."""

    def __init__(self, cv2, scale: float):
        self.cv2, self.scale = cv2, scale
        self.thick = 1 if scale < 0.8 else 2
        self.pad = 2

    def plate(self, text: str) -> tuple[int, int, int]:
        """(width, height, ascent) of the plate of ``text`` in pixels."""
        (tw, th), base = self.cv2.getTextSize(text, FONT, self.scale, self.thick)
        return tw + 2 * self.pad, th + base + 2 * self.pad, th

    def label(self, text: str, x0: int, y0: int, color) -> Label:
        w, h, th = self.plate(text)
        return Label(text, (x0, y0, x0 + w, y0 + h), (x0 + self.pad, y0 + self.pad + th), color)


def _clamp(x0: int, y0: int, w: int, h: int, size: tuple[int, int]) -> tuple[int, int] | None:
    """Top-left corner moved so a w x h plate lies inside the frame; None when it cannot fit at all."""
    W, H = size
    if w > W or h > H:
        return None
    return min(max(x0, 0), W - w), min(max(y0, 0), H - h)


def _segment_between(a: Rect, b: Rect) -> tuple[tuple[float, float], tuple[float, float]]:
    """The part of the centre-to-centre segment that lies outside both boxes (so heads touch box borders);
    the full centre-to-centre segment when the boxes overlap too much for that to exist."""
    ca = np.array([(a[0] + a[2]) / 2, (a[1] + a[3]) / 2])
    cb = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])
    d = cb - ca

    def exit_t(box):  # from the box centre along d, the fraction of d at which the box border is crossed
        return min((box[2] - box[0]) / 2 / abs(d[0]) if d[0] else math.inf,
                   (box[3] - box[1]) / 2 / abs(d[1]) if d[1] else math.inf)

    if not d.any():
        return tuple(ca), tuple(cb)
    t0, t1 = exit_t(a), 1.0 - exit_t(b)
    if t1 - t0 < 0.15:  # heavy overlap (a rider on a bike): centre to centre reads better than a stub
        return tuple(ca), tuple(cb)
    return tuple(ca + t0 * d), tuple(ca + t1 * d)


def plan_layout(graph: SceneGraph, size: tuple[int, int], text: TextMetrics, max_panel_lines: int,
                max_arrow_labels: int, status: str, prev_corner: int = 0) -> OverlayLayout:
    """Place the panel, the status line, entity labels and arrow labels of ``graph`` without overlaps.

    Greedy: reserved areas first (status, panel), then entity labels by importance, then arrow labels of the
    strongest pairs; each takes the first free candidate position with the least cover of other boxes.
    """
    W, H = size
    lay = OverlayLayout(size=size)
    occupied: list[Rect] = []
    boxes = {e.id: tuple(float(v) for v in e.box_xyxy) for e in graph.entities.values()}
    for i, b in boxes.items():
        if len(b) != 4 or not all(map(math.isfinite, b)):
            raise ValueError(f"overlay: entity {i} box_xyxy must be 4 finite numbers, got {b}")
    rels = sorted(graph.relations.values(), key=lambda r: (-r.score, r.subject_id, r.predicate, r.object_id))

    status = status or f"t={graph.t:.2f}s  entities {len(graph.entities)}  relations {len(graph.relations)}"
    _, sh, _ = text.plate(status)
    lay.status = text.label(status, 0, H - sh, (230, 230, 230))
    occupied.append(lay.status.rect)

    # panel: as many lines as fit in 45 % of the height, a "+N more" line when relations are left out
    line_h = text.plate("Ag")[1]
    n_lines = max(0, min(max_panel_lines, len(rels), int(0.45 * H) // line_h))
    lines = [(f"{r.subject_id} {r.predicate} {r.object_id}  {r.score:.2f}", color_of(r.subject_id))
             for r in rels[:n_lines]]
    if n_lines and len(rels) > n_lines:
        lines.append((f"+{len(rels) - n_lines} more", (200, 200, 200)))
    lay.corner = prev_corner
    if lines:
        pw = max(text.plate(t)[0] for t, _ in lines) + 4
        ph = line_h * len(lines) + 4
        bottom = lay.status.rect[1] - 2
        corners = [(2, 2), (W - pw - 2, 2), (2, bottom - ph), (W - pw - 2, bottom - ph)]  # TL, TR, BL, BR
        rects = [(x, y, x + pw, y + ph) for x, y in corners]
        cover = [sum(_overlap_area(r, b) for b in boxes.values()) / (pw * ph) for r in rects]
        best = int(np.argmin(cover))
        # stay put unless another corner uncovers clearly more of the scene
        lay.corner = prev_corner if cover[prev_corner] <= cover[best] + 0.15 else best
        if pw <= W and ph <= H - sh:
            lay.panel = rects[lay.corner]
            occupied.append(lay.panel)
            x, y = lay.panel[:2]
            lay.panel_lines = [text.label(t, x + 2, y + 2 + k * line_h, c) for k, (t, c) in enumerate(lines)]

    def place(candidates, label_text, color, own=None) -> Label | None:
        w, h, _ = text.plate(label_text)
        best_label, best_cost = None, math.inf
        for k, (x0, y0) in enumerate(candidates):
            xy = _clamp(int(round(x0)), int(round(y0)), w, h, size)
            if xy is None:
                continue
            lab = text.label(label_text, xy[0], xy[1], color)
            if any(overlaps(lab.rect, o) for o in occupied):
                continue
            cover = sum(_overlap_area(lab.rect, b) for i, b in boxes.items() if i != own) / (w * h)
            cost = cover + 0.05 * k  # earlier candidates are the more natural positions
            if cost < best_cost:
                best_label, best_cost = lab, cost
        if best_label is not None:
            occupied.append(best_label.rect)
        return best_label

    related = {r.subject_id for r in rels} | {r.object_id for r in rels}
    order = sorted(graph.entities.values(), key=lambda e: (e.id not in related, -e.score, e.id))
    for e in order:
        x0, y0, x1, y1 = boxes[e.id]
        color = color_of(e.id)
        for label_text in (f"{e.id} {e.label}", f"{e.id}"):
            w, h, _ = text.plate(label_text)
            cands = [(x0, y0 - h), (x0, y1), (x0, y0), (x0, y1 - h), (x1 - w, y0 - h), (x1 - w, y1), (x1 - w, y0),
                     (x1 - w, y1 - h)]
            lab = place(cands, label_text, color, own=e.id)
            if lab is not None:
                lay.entity_labels[e.id] = lab
                break

    # one arrow per unordered pair; the label of each direction shows its strongest predicate
    pairs: dict[tuple[int, int], dict[tuple[int, int], str]] = {}
    for r in rels:  # strongest first, so the first predicate seen per direction is the strongest
        pair = (min(r.subject_id, r.object_id), max(r.subject_id, r.object_id))
        pairs.setdefault(pair, {}).setdefault((r.subject_id, r.object_id), r.predicate)
    for n, (pair, dirs) in enumerate(pairs.items()):
        lo, hi = pair
        first = next(iter(dirs))  # direction of the pair's strongest relation gives the colour
        p0, p1 = _segment_between(boxes[lo], boxes[hi])
        p0i, p1i = (int(round(p0[0])), int(round(p0[1]))), (int(round(p1[0])), int(round(p1[1])))
        lay.arrows.append(Arrow(pair, p0i, p1i, (hi, lo) in dirs, (lo, hi) in dirs, color_of(first[0])))
        if n >= max_arrow_labels:
            continue
        if len(dirs) == 1:
            label_text = dirs[first]
        else:
            label_text = "  ".join(f"{s}>{o} {p}" for (s, o), p in dirs.items())
        w, h, _ = text.plate(label_text)
        cands = []
        for f in (0.5, 0.35, 0.65, 0.2, 0.8):
            cx, cy = p0[0] + f * (p1[0] - p0[0]), p0[1] + f * (p1[1] - p0[1])
            cands += [(cx - w / 2, cy - h / 2), (cx - w / 2, cy - h - 3), (cx - w / 2, cy + 3)]
        lab = place(cands, label_text, color_of(first[0]))
        if lab is not None:
            lay.arrow_labels[pair] = lab
    return lay
