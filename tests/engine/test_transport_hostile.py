"""Hostile PUB peers: the service's memory stays bounded whatever they subscribe (a real service process, peers
speaking ZMTP over real TCP sockets on loopback, the service's RSS read from /proc)."""
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

from engine.config import SubscriberConfig
from engine.transport import GraphSubscriber

ROOT = Path(__file__).resolve().parents[2]
SERVICE = """
import json, sys
from engine.config import TransportConfig
from engine.transport import GraphPublisher
cfg = TransportConfig(pub_endpoint="tcp://127.0.0.1:*", snapshot_endpoint="tcp://127.0.0.1:*", heartbeat_s=0.05,
                      max_subscription_bytes=int(sys.argv[1]))
with GraphPublisher(cfg, "HOSTILE") as pub:
    print(json.dumps([pub.pub_endpoint, pub.snapshot_endpoint]), flush=True)
    sys.stdin.readline()  # serve until the test says so
    print(json.dumps(pub.stats().__dict__), flush=True)
"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def zmtp_frame(body: bytes, command: bool = False) -> bytes:
    flags = (0x04 if command else 0) | (0x02 if len(body) > 255 else 0)
    size = len(body).to_bytes(8 if len(body) > 255 else 1, "big")
    return bytes([flags]) + size + body


class RawSubscriber:
    """A peer speaking ZMTP 3.0 (NULL mechanism) over a plain TCP socket, as a SUB would: libzmq's own SUB/XSUB
    keeps every subscription it sends in a recursive trie, and a 10 MB one crashes that peer first."""

    def __init__(self, endpoint: str):
        host, port = endpoint[len("tcp://"):].rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        greeting = b"\xff" + bytes(8) + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\0") + b"\0" + bytes(31)
        ready = b"\x05READY" + b"\x0bSocket-Type" + (3).to_bytes(4, "big") + b"SUB"
        self.sock.sendall(greeting + zmtp_frame(ready, command=True))
        got = b""
        while len(got) < 64:
            chunk = self.sock.recv(64 - len(got))
            assert chunk, "the service closed the connection during the handshake"
            got += chunk
        assert got[0] == 0xFF and got[10] == 3

    def subscribe(self, topics) -> bool:
        """Send one subscription message per topic; False when the service dropped the connection meanwhile."""
        try:
            self.sock.sendall(b"".join(zmtp_frame(b"\x01" + t) for t in topics))
            return True
        except OSError:
            return False

    def close(self) -> None:
        self.sock.close()


def test_hostile_subscriptions_leave_the_service_memory_bounded():
    proc = subprocess.Popen([sys.executable, "-c", SERVICE, str(64 * 1024)], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    peers = []
    try:
        pub_ep, snap_ep = json.loads(proc.stdout.readline())
        time.sleep(0.5)
        before = rss_mb(proc.pid)
        rng = random.Random(0)
        huge = RawSubscriber(pub_ep)                # one 10 MB topic
        huge.subscribe([b"x" * (10 << 20)])
        big = RawSubscriber(pub_ep)                 # 200 topics of 50 KB
        big.subscribe([rng.randbytes(50_000) for _ in range(200)])
        many = [RawSubscriber(pub_ep) for _ in range(4)]   # 4 x 20,000 random topics of 1-60 bytes
        for m in many:
            m.subscribe([rng.randbytes(rng.randint(1, 60)) for _ in range(20_000)])
        chatty = RawSubscriber(pub_ep)              # data messages, which a PUB never expects
        try:
            chatty.sock.sendall(b"".join(zmtp_frame(b"\x02" + rng.randbytes(500)) for _ in range(1000)))
        except OSError:
            pass
        peers = [huge, big, *many, chatty]
        peak = before
        t_end = time.monotonic() + 4.0
        while time.monotonic() < t_end:
            peak = max(peak, rss_mb(proc.pid))
            time.sleep(0.05)
        print(f"service RSS: {before:.1f} MB before, {peak:.1f} MB peak under the flood")
        # Unbounded, the 10 MB topic alone costs the service hundreds of MB (a trie node per byte).
        assert peak - before < 40, (before, peak)
        for p in peers:
            p.close()
        peers = []
        time.sleep(0.3)
        # The service still serves a well-behaved subscriber.
        with GraphSubscriber(SubscriberConfig(pub_ep, snap_ep, heartbeat_timeout_s=2.0)) as sub:
            assert sub.wait_for(lambda s: s.synced and s.stats().heartbeats >= 3, 10), sub.stats()
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        stats = json.loads(proc.stdout.readline())
        assert proc.wait(timeout=20) == 0
    finally:
        for p in peers:
            p.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert stats["subscription_floods"] >= 1 and stats["subscriptions_refused"] > 1000
    assert stats["peer_messages"] > 0
