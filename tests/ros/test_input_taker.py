"""vsgg_nodes.input_taker with real rclpy in this process: the executor spinning the node never sees the input
subscription (no frame wakes it), a worker thread takes the messages itself, the newest of a burst wins and the
count says how many were superseded, a wake ends a wait at once, and a message waiting for the worker does not
make the executor spin."""
import threading
import time

import pytest

pytest.importorskip("rclpy", reason="ROS 2 wheels missing: run `make ros`")
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from vsgg_nodes.input_taker import InputTaker, NotByExecutor  # noqa: E402

# reliable keep-last 10 in this test, so a burst of three is certainly all there when the taker looks
QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture
def pair(rclpy_context):
    """(node with an InputTaker on 'taker_in', its spinning executor, a publisher node's publisher)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    node = rclpy.create_node("vsgg_test_taker", context=rclpy_context)
    taker = InputTaker(node, String, "taker_in", QOS)
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(node)
    th = threading.Thread(target=ex.spin, daemon=True)
    th.start()
    src = rclpy.create_node("vsgg_test_taker_src", context=rclpy_context)
    pub = src.create_publisher(String, "taker_in", QOS)
    t_end = time.monotonic() + 10
    while pub.get_subscription_count() == 0 and time.monotonic() < t_end:
        time.sleep(0.02)
    assert pub.get_subscription_count() == 1
    yield node, taker, ex, pub
    ex.shutdown()
    th.join(timeout=5)
    taker.destroy()
    src.destroy_node()
    node.destroy_node()


def take_within(taker, seconds):
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        msg, n = taker.take_newest(0.2)
        if msg is not None:
            return msg, n
    return None, 0


def test_worker_takes_what_the_executor_never_sees(pair):
    node, taker, ex, pub = pair
    assert not ex.can_execute(taker.subscription)            # left out of the executor's wait set
    pub.publish(String(data="one"))
    time.sleep(0.5)                                          # the executor spins all along: it must not take it
    msg, n = take_within(taker, 5)
    assert (msg.data, n) == ("one", 1)
    assert taker.take_newest(0.05) == (None, 0)              # taken once, not twice


def test_newest_of_a_burst_wins_and_the_rest_are_counted(pair):
    _, taker, _, pub = pair
    for text in ("a", "b", "c"):
        pub.publish(String(data=text))
    time.sleep(0.5)
    msg, n = take_within(taker, 5)
    assert (msg.data, n) == ("c", 3)


def test_wake_ends_a_wait_at_once(pair):
    _, taker, _, _ = pair
    threading.Timer(0.2, taker.wake).start()
    t0 = time.monotonic()
    assert taker.take_newest(30.0) == (None, 0)
    assert time.monotonic() - t0 < 5.0


def test_raw_taker_gives_serialized_bytes(rclpy_context, pair):
    node, _, _, pub = pair
    raw = InputTaker(node, String, "taker_in", QOS, raw=True)
    try:
        time.sleep(0.5)  # matched
        pub.publish(String(data="bytes please"))
        msg, n = take_within(raw, 5)
        assert isinstance(msg, bytes) and b"bytes please" in msg and n == 1
    finally:
        raw.destroy()


def test_pending_input_does_not_wake_the_executor(pair):
    """A message waiting for a busy worker must not make the executor spin (QoS event handlers share the reader's
    status condition with the data): the process stays idle while one waits."""
    _, taker, _, pub = pair
    assert taker.subscription.event_handlers == []
    pub.publish(String(data="waiting"))
    time.sleep(0.2)
    c0 = time.process_time()
    time.sleep(1.0)
    assert time.process_time() - c0 < 0.2                  # spinning measured ~1 s of CPU per s
    msg, n = take_within(taker, 5)
    assert (msg.data, n) == ("waiting", 1)


def test_not_by_executor_refuses_every_entity(pair):
    _, taker, _, _ = pair
    group = NotByExecutor()
    assert not group.can_execute(taker.subscription) and not group.beginning_execution(taker.subscription)
