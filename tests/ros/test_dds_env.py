"""DDS stays on this machine: the environment check, the profile check, and the datagrams a node really sends."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

dds_env = pytest.importorskip("vsgg_nodes.dds_env", reason="vsgg_nodes is not installed: run `make ros`")
from socket_audit import non_loopback_destinations, strace_destinations  # noqa: E402

PY = sys.executable
PROBE = """
import os, time, rclpy
from std_msgs.msg import String
from vsgg_nodes import dds_env
dds_env.check()
with rclpy.init():
    n = rclpy.create_node('probe')
    pub = n.create_publisher(String, 'probe', 10)
    got = []
    n.create_subscription(String, 'probe', lambda m: got.append(m.data), 10)
    for i in range(30):
        pub.publish(String(data=str(i)))
        rclpy.spin_once(n, timeout_sec=0.02)
    print('received', len(got))
"""


def test_this_process_is_loopback_only(ros_env):
    assert dds_env.problems() == []
    assert ros_env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert int(ros_env["ROS_DOMAIN_ID"]) in dds_env.DOMAIN_IDS


@pytest.mark.parametrize("drop", ["ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_DEFAULT_PROFILES_FILE", "ROS_DOMAIN_ID"])
def test_context_refused_without_each_setting(ros_env, drop):
    """A node process started without one of the settings exits before rclpy.init, naming the setting."""
    env = {k: v for k, v in os.environ.items() if k != drop}
    r = subprocess.run([PY, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "refusing to create a ROS 2 context" in r.stderr and drop in r.stderr
    assert "received" not in r.stdout


def test_node_main_refuses_without_env(ros_env):
    env = {k: v for k, v in os.environ.items() if k != "ROS_AUTOMATIC_DISCOVERY_RANGE"}
    r = subprocess.run([PY, "-m", "vsgg_nodes.scene_graph_node"], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "ROS_AUTOMATIC_DISCOVERY_RANGE" in r.stderr


BAD_PROFILES = {
    "builtin transports on": ("<useBuiltinTransports>false</useBuiltinTransports>",
                              "<useBuiltinTransports>true</useBuiltinTransports>"),
    "udp on every interface": ("<address>127.0.0.1</address>\n        </interfaceWhiteList>",
                               "<address>0.0.0.0</address>\n        </interfaceWhiteList>"),
    "remote initial peer": ("<address>127.0.0.1</address>\n              </udpv4>",
                            "<address>10.0.0.7</address>\n              </udpv4>"),
    "not xml": ("<dds", "<<dds"),
}


@pytest.mark.parametrize("case", sorted(BAD_PROFILES))
def test_profile_check_rejects(tmp_path, case):
    good = dds_env.profile_path().read_text()
    old, new = BAD_PROFILES[case]
    assert old in good
    p = tmp_path / "p.xml"
    p.write_text(good.replace(old, new))
    assert dds_env.profile_problems(p), case
    env = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "FASTDDS_DEFAULT_PROFILES_FILE": str(p), "ROS_DOMAIN_ID": "7"}
    with pytest.raises(RuntimeError, match="FASTDDS_DEFAULT_PROFILES_FILE|useBuiltin|127.0.0.1|XML"):
        dds_env.check(env)


def test_domain_ids_are_exclusive_per_process(tmp_path):
    a = dds_env.pick_domain_id(tmp_path)
    code = f"from vsgg_nodes import dds_env; print(dds_env.pick_domain_id({str(tmp_path)!r}))"
    b = int(subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=30, check=True).stdout)
    assert a != b and {a, b} <= set(dds_env.DOMAIN_IDS)


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
def test_every_datagram_goes_to_loopback(ros_env, tmp_path):
    """Run a publisher + subscriber under strace: all it sends (discovery and data) is addressed to 127.0.0.1."""
    out = tmp_path / "strace.txt"
    r = subprocess.run(["strace", "-f", "-qq", "-e", "trace=sendto,sendmsg,sendmmsg,connect", "-o", str(out),
                        PY, "-c", PROBE], capture_output=True, text=True, timeout=120)
    if "Operation not permitted" in r.stderr and "ptrace" in r.stderr:
        pytest.skip("ptrace is not permitted here")
    assert r.returncode == 0, r.stderr[-2000:]
    assert int(r.stdout.split("received")[1]) > 0, r.stdout
    dests = strace_destinations(out.read_text())
    assert len(dests) > 20, "the probe sent (almost) nothing: the audit would prove nothing"
    assert non_loopback_destinations(dests) == []


def test_audit_flags_non_loopback_destinations():
    text = ('1 sendmsg(20, {msg_name={sa_family=AF_INET, sin_port=htons(7410), sin_addr=inet_addr("127.0.0.1")}}\n'
            '1 sendto(5, "x", 1, 0, {sa_family=AF_INET, sin_port=htons(7400), sin_addr=inet_addr("239.255.0.1")}, 16)\n'
            '1 connect(6, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16) = 0\n')
    assert non_loopback_destinations(strace_destinations(text)) == ["10.255.255.53", "239.255.0.1"]
