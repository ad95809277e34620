"""The relation half of the published graph, kept as arrays beside the relation filter's (row, predicate) cells.

Building every active relation as a Python object each frame and diffing two graphs costs O(relations) object work
per frame: with 20 entities (380 scored pairs, ~1,200 active relations) that alone was 3.5 ms median and the
dominant stage. ``PublishedRelations`` instead remembers, per pair-store row and predicate, the score, uncertainty
and start time that subscribers hold, compares them with the filter's state in numpy, and creates Relation objects
only for what changed. Its result is exactly ``engine.graph.diff.diff``'s relation part for the same graphs (a test runs both).
"""
from __future__ import annotations

import numpy as np

from engine.graph.build import SCORE_STEPS
from engine.types import Relation, RelationKey


class PublishedRelations:
    """Published relation state for ``capacity`` pair rows x ``num_predicates``.

    score (capacity, C) float64: the published (grid-quantised) score, NaN where nothing is published.
    unc (capacity, C) float64: the published (grid-quantised) uncertainty, NaN where none is (or nothing is).
    start (capacity, C) float64: the published start time (s). subject_ids / object_ids (capacity,) int64: the pair
    each row's published relations belong to (-1: none), so a row reused by another pair is noticed.
    """

    def __init__(self, capacity: int, num_predicates: int):
        self.score = np.full((capacity, num_predicates), np.nan)
        self.unc = np.full((capacity, num_predicates), np.nan)
        self.start = np.zeros((capacity, num_predicates))
        self.subject_ids = np.full(capacity, -1, np.int64)
        self.object_ids = np.full(capacity, -1, np.int64)

    def reset(self) -> None:
        self.score[:] = np.nan
        self.unc[:] = np.nan
        self.subject_ids[:] = -1
        self.object_ids[:] = -1

    def __len__(self) -> int:
        return int(np.count_nonzero(~np.isnan(self.score)))

    def delta(self, subject_ids: np.ndarray, object_ids: np.ndarray, active: np.ndarray, smoothed: np.ndarray,
              start_time: np.ndarray, entity_ids: np.ndarray, predicates: tuple[str, ...],
              score_tolerance: float, observed_rows: np.ndarray | None = None,
              uncertainty: np.ndarray | None = None) -> tuple[tuple[Relation, ...], tuple[RelationKey, ...]]:
        """Relations to upsert and keys to remove so that subscribers hold the current relations; commits them.

        subject_ids, object_ids (capacity,): the pair of each row now (-1: free). active, smoothed, start_time
        (capacity, C): the relation filter's state. entity_ids: ids of the entities in the graph being published
        (a relation is published only when both its ends are). uncertainty (capacity, C): the filter's latest
        model uncertainty per cell (None: the model gives none). A relation is re-sent when its quantised score or
        uncertainty moved more than ``score_tolerance`` from the published one (any change when 0), its
        uncertainty appeared or vanished, or its start time changed; as in ``diff``, a field that did not move
        keeps its published value. Both tuples are sorted by key, as ``engine.graph.diff.diff`` lists them.

        observed_rows: the rows the filter updated since the last call (None: look at every row). Only those,
        published rows whose pair left the graph or whose row was reused, and active rows with nothing published
        can differ from what is published: the filter's state of every other row is as it was at the last call.
        """
        act_any = active.any(1)
        pub_any = self.subject_ids >= 0
        if observed_rows is None:
            rows = np.flatnonzero(act_any | pub_any)
        else:
            pr = np.flatnonzero(pub_any)
            gone = ((subject_ids[pr] != self.subject_ids[pr]) | (object_ids[pr] != self.object_ids[pr])
                    | ~np.isin(subject_ids[pr], entity_ids) | ~np.isin(object_ids[pr], entity_ids))
            rows = np.union1d(np.union1d(observed_rows, pr[gone]), np.flatnonzero(act_any & ~pub_any))
        if len(rows) == 0:
            return (), ()
        s_now, o_now = subject_ids[rows], object_ids[rows]
        s_pub, o_pub = self.subject_ids[rows], self.object_ids[rows]
        ok = (s_now >= 0) & np.isin(s_now, entity_ids) & np.isin(o_now, entity_ids)
        moved_row = (s_pub != s_now) | (o_pub != o_now)   # row released and reused by another pair
        cur = active[rows] & ok[:, None]
        pub_score = self.score[rows]
        pub = ~np.isnan(pub_score)
        remove = pub & (~cur | moved_row[:, None])
        # Only held cells (a few % of rows x C) can be sent: their fields are compared cell by cell.
        i, c = np.nonzero(cur)
        r = rows[i]
        # the same rounding as engine.graph.build.quantize_relation (numpy and Python both round half to even)
        q = np.round(smoothed[r, c].astype(np.float64) * SCORE_STEPS) / SCORE_STEPS
        u = np.full(len(r), np.nan) if uncertainty is None else \
            np.round(uncertainty[r, c].astype(np.float64) * SCORE_STEPS) / SCORE_STEPS
        st, ps, pu = start_time[r, c], pub_score[i, c], self.unc[r, c]
        stay = pub[i, c] & ~moved_row[i]
        flip = np.isnan(u) != np.isnan(pu)              # an uncertainty appeared or vanished
        with np.errstate(invalid="ignore"):
            d, du = np.abs(q - ps), np.abs(u - pu)      # NaN where nothing (or no uncertainty) is published
        if score_tolerance > 0:
            moved, u_moved = d > score_tolerance, du > score_tolerance
        else:
            moved, u_moved = d != 0, ~np.isnan(du) & (du != 0)
        whole = ~stay | (st != self.start[r, c]) | flip  # new, restarted or flipped: every field current, as diff
        upsert = whole | moved | u_moved
        out_s, out_u = np.where(whole | moved, q, ps), np.where(whole | u_moved, u, pu)

        k = np.flatnonzero(upsert)
        up = [Relation(sj, predicates[p], ob, sc, un, t0) for sj, p, ob, sc, un, t0 in zip(
            s_now[i[k]].tolist(), c[k].tolist(), o_now[i[k]].tolist(), out_s[k].tolist(), out_u[k].tolist(),
            st[k].tolist())]
        up_keys = {x.key for x in up}
        # a pair that moved to another row in this frame is removed from the old row and upserted from the new:
        # list it once, as an upsert
        rm = {(int(s_pub[j]), predicates[p], int(o_pub[j])) for j, p in zip(*np.nonzero(remove))} - up_keys

        # commit: rows now hold exactly `cur` (published values where unchanged, new ones where upserted; a held
        # cell that was not sent has the start time published before, or it would have been sent)
        self.score[rows] = np.nan
        self.unc[rows] = np.nan
        self.score[r, c], self.unc[r, c], self.start[r, c] = out_s, out_u, st
        has = cur.any(1)
        self.subject_ids[rows] = np.where(has, s_now, -1)
        self.object_ids[rows] = np.where(has, o_now, -1)
        up.sort(key=lambda x: x.key)
        return tuple(up), tuple(sorted(rm))
