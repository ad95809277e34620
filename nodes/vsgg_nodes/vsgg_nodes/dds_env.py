"""Keep ROS 2 (Fast DDS) traffic on this machine: the environment every process with an rclpy context must have.

Fast DDS discovers peers by multicast on every network interface by default, and Kilted ignores
``ROS_LOCALHOST_ONLY``. Three settings together keep every byte on loopback (ENVIRONMENT.md §9, verified there
with a packet capture):

* ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``;
* ``FASTDDS_DEFAULT_PROFILES_FILE`` = ``config/fastdds_localhost.xml``: shared memory plus UDPv4 on 127.0.0.1 only,
  builtin transports off;
* a ``ROS_DOMAIN_ID`` picked per run (an flock per id), so parallel runs on one machine do not meet.

They must be in ``os.environ`` before rclpy is imported. ``apply()`` sets them (tests' conftest, ``vsgg ros-launch``,
``vsgg bench ros``); child processes inherit them, so the nodes of one run share a domain. ``check()`` is what every
node's ``main`` calls before ``rclpy.init``: it refuses to start without them. This module does not import rclpy.

On a robot whose graph must span machines, set ``VSGG_DDS_NETWORK=1`` to skip the check (nothing here sets it).
"""
from __future__ import annotations

import fcntl
import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import MutableMapping

RANGE_VAR, PROFILE_VAR, DOMAIN_VAR = "ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_DEFAULT_PROFILES_FILE", "ROS_DOMAIN_ID"
OPT_OUT_VAR = "VSGG_DDS_NETWORK"
PROFILE_NAME = "fastdds_localhost.xml"
# Fast DDS maps a domain to UDP ports 7400 + 250 * id; ids above 101 collide with ephemeral ports on Linux
DOMAIN_IDS = range(1, 101)  # 0 is every stock ROS install's default: never share it
_NS = "{http://www.eprosima.com}"
_held_locks: dict[int, int] = {}  # domain id -> fd of its lock file, kept open for the life of the process


def profile_path() -> Path:
    """The loopback-only Fast DDS profile: next to the sources (pip -e) or in the colcon share folder."""
    here = Path(__file__).resolve().parents[1] / "config" / PROFILE_NAME
    if here.is_file():
        return here
    try:
        from ament_index_python.packages import get_package_share_directory
        shared = Path(get_package_share_directory("vsgg_nodes")) / "config" / PROFILE_NAME
    except (ImportError, LookupError):
        shared = here
    if not shared.is_file():
        raise FileNotFoundError(f"{PROFILE_NAME}: not found next to the sources ({here}) nor in share/vsgg_nodes")
    return shared


def profile_problems(path: str | Path) -> list[str]:
    """Why the Fast DDS XML profile at ``path`` could let traffic leave the machine; [] when it cannot.

    Accepted: builtin transports off, and only SHM transports or UDPv4 transports whose interface white list is
    exactly 127.0.0.1; discovery peers (if any) on 127.0.0.1."""
    p = Path(path)
    if not p.is_file():
        return [f"{PROFILE_VAR}: profile file not found: {p}"]
    try:
        root = ET.parse(p).getroot()
    except ET.ParseError as e:
        return [f"{PROFILE_VAR}: {p} is not valid XML ({e})"]
    out = []
    participants = root.findall(f".//{_NS}participant")
    defaults = [x for x in participants if x.get("is_default_profile") == "true"]
    if len(defaults) != 1:
        out.append(f"{p}: expected exactly one participant profile with is_default_profile=\"true\"")
    for part in defaults:
        if (part.findtext(f".//{_NS}useBuiltinTransports") or "").strip().lower() != "false":
            out.append(f"{p}: useBuiltinTransports must be false (the builtin UDP transport uses every interface)")
        used = [t.text.strip() for t in part.findall(f".//{_NS}userTransports/{_NS}transport_id") if t.text]
        if not used:
            out.append(f"{p}: the participant lists no userTransports")
        for addr in part.findall(f".//{_NS}initialPeersList//{_NS}address"):
            if (addr.text or "").strip() != "127.0.0.1":
                out.append(f"{p}: initial peer {addr.text!r} is not 127.0.0.1")
        descriptors = {(d.findtext(f"{_NS}transport_id") or "").strip(): d
                       for d in root.findall(f".//{_NS}transport_descriptor")}
        for tid in used:
            d = descriptors.get(tid)
            if d is None:
                out.append(f"{p}: transport {tid!r} is used but not described")
                continue
            kind = (d.findtext(f"{_NS}type") or "").strip()
            if kind == "SHM":
                continue
            allowed = [(a.text or "").strip() for a in d.findall(f"{_NS}interfaceWhiteList/{_NS}address")]
            if kind != "UDPv4" or allowed != ["127.0.0.1"]:
                out.append(f"{p}: transport {tid!r} ({kind}) is not SHM nor UDPv4 limited to 127.0.0.1")
    return out


def problems(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Every reason why a process with environment ``environ`` (default: this one's) could send DDS traffic off
    the machine; [] when the environment is safe."""
    env = os.environ if environ is None else environ
    out = []
    if env.get(RANGE_VAR) != "LOCALHOST":
        out.append(f"{RANGE_VAR} must be LOCALHOST, got {env.get(RANGE_VAR)!r}")
    if not env.get(PROFILE_VAR):
        out.append(f"{PROFILE_VAR} is not set (expected {profile_path()})")
    else:
        out += profile_problems(env[PROFILE_VAR])
    dom = env.get(DOMAIN_VAR, "")
    if not dom.isdigit() or int(dom) not in DOMAIN_IDS:
        out.append(f"{DOMAIN_VAR} must be a per-run id in {DOMAIN_IDS.start}..{DOMAIN_IDS.stop - 1}, got {dom!r}")
    return out


def check(environ: MutableMapping[str, str] | None = None) -> None:
    """Raise RuntimeError listing the problems unless the environment keeps DDS on loopback (or opts out)."""
    env = os.environ if environ is None else environ
    if env.get(OPT_OUT_VAR) == "1":
        return
    found = problems(env)
    if found:
        raise RuntimeError("refusing to create a ROS 2 context: DDS traffic could leave this machine:\n  - "
                           + "\n  - ".join(found)
                           + "\nUse vsgg_nodes.dds_env.apply() (tests, vsgg ros-launch do) or set "
                             f"{OPT_OUT_VAR}=1 on a robot whose ROS graph spans machines.")


def pick_domain_id(lock_dir: str | Path | None = None) -> int:
    """A ROS domain id no other vsgg run on this machine holds; the lock lasts as long as this process."""
    d = Path(lock_dir or tempfile.gettempdir())
    start = os.getpid() % len(DOMAIN_IDS)
    for k in range(len(DOMAIN_IDS)):
        dom = DOMAIN_IDS[(start + k) % len(DOMAIN_IDS)]
        if dom in _held_locks:
            continue
        fd = os.open(d / f"vsgg-ros-domain-{dom}.lock", os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _held_locks[dom] = fd
        return dom
    raise RuntimeError(f"no free ROS domain id in {DOMAIN_IDS.start}..{DOMAIN_IDS.stop - 1} (all locked in {d})")


def apply(environ: MutableMapping[str, str] | None = None, log_dir: str | Path | None = None) -> dict[str, str]:
    """Put the loopback-only settings into ``environ`` (default ``os.environ``) and return them.

    An existing valid ``ROS_DOMAIN_ID`` is kept (a child of a run stays in its parent's domain); otherwise a free
    one is picked. ``log_dir``: where rcl writes its logs (``ROS_LOG_DIR``; default: left as is, i.e. ~/.ros)."""
    env = os.environ if environ is None else environ
    dom = env.get(DOMAIN_VAR, "")
    if not (dom.isdigit() and int(dom) in DOMAIN_IDS):
        dom = str(pick_domain_id())
    settings = {RANGE_VAR: "LOCALHOST", PROFILE_VAR: str(profile_path()), DOMAIN_VAR: dom}
    if log_dir is not None:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        settings["ROS_LOG_DIR"] = str(log_dir)
    env.update(settings)
    return settings
