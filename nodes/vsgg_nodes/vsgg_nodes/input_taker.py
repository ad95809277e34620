"""The input subscription of scene_graph_node, waited on and taken by its inference thread, not by the executor.

Why: while the executor delivered the frames, each one woke rclpy's SingleThreadedExecutor, which rebuilds its
wait set in Python from every entity of the node (about 20: lifecycle and parameter services, publishers' event
handlers, timers) on each wake. ``vsgg bench ros`` measured 1.8 ms of CPU per frame on the executor thread of
scene_graph_node, holding the GIL that the inference thread needs, plus 0.3 ms to hand the frame over through a
condition variable; on a 2-core machine that CPU came out of the detector's share.

How: the subscription is made with ``node.create_subscription`` in a callback group whose ``can_execute`` is
always False, so executors leave it out of their wait sets. The inference thread waits on it with an rcl wait set
of its own (the mechanism of rclpy's public ``wait_for_message``) and takes the messages itself; a guard
condition in the same group wakes it to stop. Services, parameters and lifecycle transitions stay on the
executor, which no frame wakes any more.

The subscription has no QoS event handlers. rmw_fastrtps signals them through the reader's status condition,
which also reports unread data: with a handler in the executor's wait set, every frame waiting for the busy
worker made the executor return from its wait at once, again and again, spinning in Python on the GIL (measured:
frames taken 100 to 600 ms late). The one default handler, rclpy's incompatible-QoS warning, cannot fire for the
best-effort volatile subscriptions made here, which match any publisher's reliability and durability.
"""
from __future__ import annotations

from typing import Any

from rclpy.callback_groups import CallbackGroup
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy  # as rclpy.wait_for_message uses it

try:
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble: the same class in its older module
    from rclpy.qos_event import SubscriptionEventCallbacks

#: messages taken in one call at most: the reader's history depth bounds them anyway (sensor-data QoS: 5)
MAX_TAKEN_PER_WAIT = 16


class NotByExecutor(CallbackGroup):
    """A callback group no executor runs: its entities are served by a thread of the node's own."""

    def can_execute(self, entity) -> bool:
        return False

    def beginning_execution(self, entity) -> bool:
        return False

    def ending_execution(self, entity) -> None:
        pass


def _never_called(*_) -> None:  # the executor never runs the group, so this callback never runs
    raise AssertionError("an entity of NotByExecutor was executed")


class InputTaker:
    """A subscription of ``node`` that only ``take_newest`` reads (call it from one thread only).

    msg_type, topic, qos, raw: as for ``node.create_subscription``. With ``raw`` the messages are the serialized
    bytes (CDR)."""

    def __init__(self, node, msg_type, topic: str, qos, raw: bool = False):
        self._node = node
        self._group = NotByExecutor()
        self.subscription = node.create_subscription(
            msg_type, topic, _never_called, qos, callback_group=self._group, raw=raw,
            event_callbacks=SubscriptionEventCallbacks(use_default_callbacks=False))  # see the module docstring
        self._wake = node.create_guard_condition(_never_called, callback_group=self._group)
        self._wait_set = _rclpy.WaitSet(1, 1, 0, 0, 0, 0, node.context.handle)

    def wake(self) -> None:
        """Make a ``take_newest`` waiting in another thread return now (thread-safe)."""
        self._wake.trigger()

    def take_newest(self, timeout_s: float) -> tuple[Any | None, int]:
        """Wait up to ``timeout_s`` seconds for input, then take every message the reader holds.

        Returns (the newest message or None, how many were taken): the older ones of the same call are
        superseded, and the caller counts them as dropped. None with 0 on a timeout or a ``wake``."""
        sub, ws = self.subscription, self._wait_set
        with sub.handle, self._wake.handle:
            ws.clear_entities()
            ws.add_subscription(sub.handle)
            ws.add_guard_condition(self._wake.handle)
            ws.wait(max(0, int(timeout_s * 1e9)))  # releases the GIL while it waits
            if sub.handle.pointer not in ws.get_ready_entities("subscription"):
                return None, 0
            newest, taken = None, 0
            while taken < MAX_TAKEN_PER_WAIT:
                got = sub.handle.take_message(sub.msg_type, sub.raw)
                if got is None:
                    break
                newest, taken = got[0], taken + 1
        return newest, taken

    def destroy(self) -> None:
        """Destroy the subscription and guard condition (after the thread calling ``take_newest`` stopped)."""
        self._node.destroy_subscription(self.subscription)
        self._node.destroy_guard_condition(self._wake)
