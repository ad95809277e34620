"""Drive a lifecycle node from another process: its ``get_state`` and ``change_state`` services (what ``ros2
lifecycle set`` and launch_ros' ChangeState events do).

The calling node must be spun by an executor on another thread (the futures complete there). Every wait takes a
``stop`` event too, so a launcher that receives Ctrl-C while a slow transition (configure loads the models) runs
does not hang.
"""
from __future__ import annotations

import threading
import time

from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState

#: transition names (as ``ros2 lifecycle set`` spells them) -> lifecycle_msgs/Transition ids
TRANSITIONS = {"configure": Transition.TRANSITION_CONFIGURE, "activate": Transition.TRANSITION_ACTIVATE,
               "deactivate": Transition.TRANSITION_DEACTIVATE, "cleanup": Transition.TRANSITION_CLEANUP}
#: states in which a transition is still running: wait for them to settle
TRANSITIONAL = ("configuring", "cleaningup", "activating", "deactivating", "shuttingdown", "errorprocessing")


class LifecycleClient:
    """Client of one lifecycle node ``target`` (fully qualified, e.g. /vsgg/scene_graph_node) made on ``node``."""

    def __init__(self, node, target: str):
        if not target.startswith("/"):
            raise ValueError(f"target: expected a fully qualified node name such as /vsgg/scene_graph_node, "
                             f"got {target!r}")
        self.target = target
        self._node = node
        self._get = node.create_client(GetState, f"{target}/get_state")
        self._change = node.create_client(ChangeState, f"{target}/change_state")

    def wait_for_services(self, timeout_s: float, stop: threading.Event | None = None) -> bool:
        """True once both services are reachable; False after ``timeout_s`` or when ``stop`` is set."""
        t_end = time.monotonic() + timeout_s
        while time.monotonic() < t_end and not (stop is not None and stop.is_set()):
            if self._get.service_is_ready() and self._change.service_is_ready():
                return True
            time.sleep(0.05)
        return False

    def state(self, timeout_s: float = 10.0, stop: threading.Event | None = None) -> str | None:
        """The node's current state label ('unconfigured', 'inactive', 'active', ...), None if no answer."""
        res = self._call(self._get, GetState.Request(), timeout_s, stop)
        return None if res is None else res.current_state.label

    def settled_state(self, timeout_s: float = 30.0) -> str | None:
        """The state once no transition is running (a configure may still be loading models), None if no
        answer within ``timeout_s``."""
        t_end = time.monotonic() + timeout_s
        label = None
        while time.monotonic() < t_end:
            label = self.state(max(0.1, t_end - time.monotonic()))
            if label is None or label not in TRANSITIONAL:
                return label
            time.sleep(0.1)
        return None

    def change(self, transition: str, timeout_s: float = 60.0, stop: threading.Event | None = None) -> bool | None:
        """Request ``transition`` (a TRANSITIONS name). True/False: the node's answer (False = refused or failed);
        None: no answer within ``timeout_s`` or ``stop`` was set first."""
        if transition not in TRANSITIONS:
            raise ValueError(f"transition: {transition!r} is not one of {', '.join(TRANSITIONS)}")
        req = ChangeState.Request(transition=Transition(id=TRANSITIONS[transition]))
        res = self._call(self._change, req, timeout_s, stop)
        return None if res is None else bool(res.success)

    def destroy(self) -> None:
        self._node.destroy_client(self._get)
        self._node.destroy_client(self._change)

    def _call(self, client, request, timeout_s: float, stop: threading.Event | None):
        t_end = time.monotonic() + timeout_s
        while not client.service_is_ready():
            if time.monotonic() > t_end or (stop is not None and stop.is_set()):
                return None
            time.sleep(0.05)
        fut = client.call_async(request)
        done = threading.Event()
        fut.add_done_callback(lambda _: done.set())
        while not done.wait(0.05):
            if time.monotonic() > t_end or (stop is not None and stop.is_set()):
                fut.cancel()
                return None
        return fut.result()
