"""Field-level wire checks of the graph service: scalars, names, epochs and graph items as positional arrays.

Every check raises ``WireError`` (a ValueError) naming the field by its path in the message, e.g.
``delta.ents[3].score``. Items on the wire (fixed point: boxes in 1/BOX_STEPS_PER_PX px, scores and uncertainties
in 1/SCORE_STEPS, see engine.graph.build; times float64 seconds):

* entity         ``[id, label, score, [x1, y1, x2, y2], first_seen]`` (box xyxy)
* relation       ``[subject_id, predicate, object_id, score, uncertainty or nil, start_time]``
* entity move    ``[id, dx1, dy1, dx2, dy2]`` or ``[id, dx1, dy1, dx2, dy2, score]``: the box change (steps) since
  the receiver's copy, and the new score when it changed; label and first_seen are unchanged
* relation score ``[subject_id, predicate, object_id, score]`` or ``[..., score, uncertainty]``: new score (and
  uncertainty) of a relation the receiver holds; its start_time is unchanged
"""
from __future__ import annotations

import math
import re
from typing import Any, Sequence

import numpy as np

from engine.graph.build import BOX_STEPS_PER_PX, SCORE_STEPS, box_steps, score_steps
from engine.types import Entity, Relation, RelationKey
from engine.vocab import MAX_NAME_LEN  # entity labels and predicates; defined beside the other name rules

MAX_EPOCH_LEN = 64
MAX_SUBTREE_LEN = 256
MAX_REASON_LEN = 512
MAX_ID = 2 ** 63 - 1    # ids, seq and request ids fit a signed 64-bit integer
MAX_STEPS = 2 ** 53     # fixed-point values stay exact as float64 (a box of 9e14 px)
_EPOCH_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class WireError(ValueError):
    """A message that does not follow the wire format. ``code`` is the error reply code for it ("malformed",
    "too_large" or "version"); ``rid`` the request id when one could be read (for the error reply)."""

    def __init__(self, message: str, code: str = "malformed", rid: int | None = None):
        super().__init__(message)
        self.code = code
        self.rid = rid


def check_int(v: Any, what: str, lo: int = 0, hi: int = MAX_ID) -> int:
    """An integer (not bool) in [lo, hi]."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise WireError(f"{what}: expected an integer, got {type(v).__name__}")
    v = int(v)
    if not lo <= v <= hi:
        raise WireError(f"{what}: {v} is outside [{lo}, {hi}]")
    return v


def check_number(v: Any, what: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    """A finite int or float (not bool) in [lo, hi], as float."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise WireError(f"{what}: expected a number, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v):
        raise WireError(f"{what}: {v} is not finite")
    if not lo <= v <= hi:
        raise WireError(f"{what}: {v} is outside [{lo}, {hi}]")
    return v


def check_name(v: Any, what: str, max_len: int = MAX_NAME_LEN, allow_empty: bool = False) -> str:
    """A string of at most max_len chars without control characters: C0, DEL, and everything str.isprintable()
    refuses (C1 controls such as \x9b, bidirectional overrides such as U+202E, zero-width and line separators),
    so that names from a peer cannot drive a terminal or reorder a log line."""
    if not isinstance(v, str):
        raise WireError(f"{what}: expected a string, got {type(v).__name__}")
    if (not v and not allow_empty) or len(v) > max_len:
        raise WireError(f"{what}: length {len(v)} is outside [{0 if allow_empty else 1}, {max_len}]")
    if CONTROL_RE.search(v) or not v.isprintable():
        raise WireError(f"{what}: contains control or formatting characters")
    return v


def check_array(v: Any, what: str, max_len: int, exact: int | None = None) -> Sequence:
    """A list of at most max_len (or exactly ``exact``) elements."""
    if not isinstance(v, (list, tuple)):
        raise WireError(f"{what}: expected an array, got {type(v).__name__}")
    if exact is not None and len(v) != exact:
        raise WireError(f"{what}: expected {exact} elements, got {len(v)}")
    if len(v) > max_len:
        raise WireError(f"{what}: {len(v)} elements exceed the limit of {max_len}")
    return v


def check_map(v: Any, what: str, required: Sequence[str], optional: Sequence[str] = ()) -> dict:
    """A map with all the ``required`` keys and any of the ``optional`` ones (other keys are errors)."""
    if not isinstance(v, dict):
        raise WireError(f"{what}: expected a map, got {type(v).__name__}")
    missing = [k for k in required if k not in v]
    if missing:
        raise WireError(f"{what}.{missing[0]}: missing")
    unknown = sorted(str(k) for k in v if k not in required and k not in optional)
    if unknown:
        raise WireError(f"{what}.{unknown[0]}: unknown field")
    return v


def check_epoch(epoch: Any, what: str = "epoch") -> str:
    """``epoch`` if it is a valid epoch id, else WireError."""
    if not isinstance(epoch, str) or not _EPOCH_RE.fullmatch(epoch):
        raise WireError(f"{what}: expected 1-{MAX_EPOCH_LEN} chars of [A-Za-z0-9._:-], got {epoch!r:.80}")
    return epoch


def check_subtree(subtree: Any, what: str = "subtree") -> str:
    """``subtree`` if it is a valid key prefix ("" = everything), else WireError."""
    return check_name(subtree, what, MAX_SUBTREE_LEN, allow_empty=True)


def _box_from_steps(v: Any, what: str) -> tuple[float, float, float, float]:
    box = check_array(v, what, 4, exact=4)
    x1, y1, x2, y2 = (check_int(b, f"{what}[{i}]", -MAX_STEPS, MAX_STEPS) for i, b in enumerate(box))
    if x2 < x1 or y2 < y1:
        raise WireError(f"{what}: negative width or height {[x1, y1, x2, y2]} (steps); expected x1<=x2, y1<=y2")
    return tuple(c / BOX_STEPS_PER_PX for c in (x1, y1, x2, y2))


def check_score_steps(v: Any, what: str, hi: int = SCORE_STEPS) -> float:
    """A score (or uncertainty, hi=MAX_STEPS) in steps of 1/SCORE_STEPS -> float."""
    return check_int(v, what, 0, hi) / SCORE_STEPS


def entity_from_wire(v: Any, what: str) -> Entity:
    """``[id, label, score, [x1, y1, x2, y2], first_seen]`` (fixed point) -> Entity (box xyxy pixels)."""
    v = check_array(v, what, 5, exact=5)
    return Entity(check_int(v[0], f"{what}.id"), check_name(v[1], f"{what}.label"),
                  check_score_steps(v[2], f"{what}.score"), _box_from_steps(v[3], f"{what}.box_xyxy"),
                  check_number(v[4], f"{what}.first_seen"))


def relation_from_wire(v: Any, what: str) -> Relation:
    """``[subject_id, predicate, object_id, score, uncertainty or nil, start_time]`` -> Relation (nil -> NaN)."""
    v = check_array(v, what, 6, exact=6)
    unc = math.nan if v[4] is None else check_score_steps(v[4], f"{what}.uncertainty", MAX_STEPS)
    return Relation(check_int(v[0], f"{what}.subject_id"), check_name(v[1], f"{what}.predicate"),
                    check_int(v[2], f"{what}.object_id"), check_score_steps(v[3], f"{what}.score"), unc,
                    check_number(v[5], f"{what}.start_time"))


def entity_move_from_wire(v: Any, what: str) -> tuple[int, tuple[int, int, int, int], int | None]:
    """``[id, dx1, dy1, dx2, dy2(, score)]`` -> (id, box change in steps, new score in steps or None)."""
    v = check_array(v, what, 6)
    if len(v) not in (5, 6):
        raise WireError(f"{what}: expected 5 or 6 elements, got {len(v)}")
    d = tuple(check_int(x, f"{what}.d{c}", -MAX_STEPS, MAX_STEPS) for x, c in zip(v[1:5], ("x1", "y1", "x2", "y2")))
    score = check_int(v[5], f"{what}.score", 0, SCORE_STEPS) if len(v) == 6 else None
    return check_int(v[0], f"{what}.id"), d, score


def relation_score_from_wire(v: Any, what: str) -> tuple[RelationKey, int, int | None]:
    """``[subject_id, predicate, object_id, score(, uncertainty)]`` -> (key, score steps, uncertainty steps|None)."""
    v = check_array(v, what, 5)
    if len(v) not in (4, 5):
        raise WireError(f"{what}: expected 4 or 5 elements, got {len(v)}")
    key = relation_key_from_wire(v[:3], what)
    unc = check_int(v[4], f"{what}.uncertainty", 0, MAX_STEPS) if len(v) == 5 else None
    return key, check_int(v[3], f"{what}.score", 0, SCORE_STEPS), unc


def relation_key_from_wire(v: Any, what: str) -> RelationKey:
    v = check_array(v, what, 3, exact=3)
    return (check_int(v[0], f"{what}.subject_id"), check_name(v[1], f"{what}.predicate"),
            check_int(v[2], f"{what}.object_id"))


def check_unique(keys: Sequence, what: str) -> None:
    if len(set(keys)) != len(keys):
        seen = set()
        dup = next(k for k in keys if k in seen or seen.add(k))
        raise WireError(f"{what}: duplicate key {dup!r}")


def entities_from_wire(v: Any, what: str, max_items: int) -> tuple[Entity, ...]:
    out = tuple(entity_from_wire(e, f"{what}[{i}]") for i, e in enumerate(check_array(v, what, max_items)))
    check_unique([e.id for e in out], what)
    return out


def relations_from_wire(v: Any, what: str, max_items: int) -> tuple[Relation, ...]:
    out = tuple(relation_from_wire(r, f"{what}[{i}]") for i, r in enumerate(check_array(v, what, max_items)))
    check_unique([r.key for r in out], what)
    return out


def check_count(n: int, what: str, max_items: int) -> None:
    if n > max_items:
        raise WireError(f"{what}: {n} items exceed the limit of {max_items}", code="too_large")


def entity_to_wire(e: Entity, what: str) -> list:
    """Entity -> positional fixed-point array (values are checked by entity_from_wire on the encoded body)."""
    if not isinstance(e, Entity):
        raise WireError(f"{what}: expected an Entity, got {type(e).__name__}")
    return [e.id, e.label, _steps(score_steps, e.score, f"{what}.score"),
            [_steps(box_steps, c, f"{what}.box_xyxy[{i}]") for i, c in enumerate(e.box_xyxy)], e.first_seen]


def relation_to_wire(r: Relation, what: str) -> list:
    """Relation -> positional fixed-point array; NaN uncertainty becomes nil."""
    if not isinstance(r, Relation):
        raise WireError(f"{what}: expected a Relation, got {type(r).__name__}")
    unc = None if _is_nan(r.uncertainty) else _steps(score_steps, r.uncertainty, f"{what}.uncertainty")
    return [r.subject_id, r.predicate, r.object_id, _steps(score_steps, r.score, f"{what}.score"), unc, r.start_time]


def entity_move_to_wire(e: Entity, base: Entity, what: str) -> list | None:
    """The move form of ``e`` against the receiver's ``base`` copy, or None when only a full entity can say it
    (another label or first_seen)."""
    if not isinstance(e, Entity):
        raise WireError(f"{what}: expected an Entity, got {type(e).__name__}")
    if e.label != base.label or e.first_seen != base.first_seen:
        return None
    d = [_steps(box_steps, a, f"{what}.box_xyxy[{i}]") - box_steps(b)
         for i, (a, b) in enumerate(zip(e.box_xyxy, base.box_xyxy))]
    s, s0 = _steps(score_steps, e.score, f"{what}.score"), score_steps(base.score)
    return [e.id, *d] + ([s] if s != s0 else [])


def relation_score_to_wire(r: Relation, base: Relation, what: str) -> list | None:
    """The score form of ``r`` against the receiver's ``base`` copy, or None when the start time changed or the
    uncertainty appeared / disappeared (a full relation is sent then)."""
    if not isinstance(r, Relation):
        raise WireError(f"{what}: expected a Relation, got {type(r).__name__}")
    if r.start_time != base.start_time or _is_nan(r.uncertainty) != _is_nan(base.uncertainty):
        return None
    out = [r.subject_id, r.predicate, r.object_id, _steps(score_steps, r.score, f"{what}.score")]
    if not _is_nan(r.uncertainty):
        u = _steps(score_steps, r.uncertainty, f"{what}.uncertainty")
        if u != score_steps(base.uncertainty):
            out.append(u)
    return out


def _is_nan(v) -> bool:
    return isinstance(v, (float, np.floating)) and math.isnan(v)


def _steps(fn, v, what: str) -> int:
    """fn(v) (grid steps) for a finite number, else WireError naming the field."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise WireError(f"{what}: expected a number, got {type(v).__name__}")
    if not math.isfinite(v):
        raise WireError(f"{what}: {v} is not finite")
    return int(fn(float(v)))


def plain(v: Any) -> Any:
    """numpy scalars -> Python scalars, so msgpack packs them (and never needs an ext type)."""
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v
