"""Where a process can send datagrams: its UDP sockets (/proc) and the destinations it sent to (strace output).

Reads /proc/<pid>/fd (socket inodes) and /proc/net/udp{,6} (Linux). A process whose every UDP socket is bound to
127.0.0.0/8 cannot send a datagram off the machine; one bound to 0.0.0.0 (the Fast DDS default) can.
"""
from __future__ import annotations

import os
import socket
import struct
from pathlib import Path


def _inodes(pid: int) -> set[int]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed while listing
        if target.startswith("socket:["):
            out.add(int(target[8:-1]))
    return out


def _udp_table(path: str, v6: bool) -> dict[int, tuple[str, int]]:
    """inode -> (local address, port) of every row of /proc/net/udp or udp6."""
    rows = {}
    p = Path(path)
    if not p.exists():
        return rows
    for line in p.read_text().splitlines()[1:]:
        f = line.split()
        addr_hex, port_hex = f[1].split(":")
        raw = bytes.fromhex(addr_hex)
        if v6:  # four little-endian 32-bit words
            raw = b"".join(struct.pack(">I", struct.unpack("<I", raw[i:i + 4])[0]) for i in range(0, 16, 4))
            addr = socket.inet_ntop(socket.AF_INET6, raw)
        else:
            addr = socket.inet_ntoa(struct.pack(">I", struct.unpack("<I", raw)[0]))
        rows[int(f[9])] = (addr, int(port_hex, 16))
    return rows


def udp_sockets(pid: int) -> list[tuple[str, int]]:
    """(local address, port) of every UDP socket (IPv4 and IPv6) the process ``pid`` holds."""
    table = {**_udp_table(f"/proc/{pid}/net/udp", False), **_udp_table(f"/proc/{pid}/net/udp6", True)}
    return sorted(table[i] for i in _inodes(pid) if i in table)


def non_loopback(sockets: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The sockets that are not bound to a loopback address."""
    return [(a, p) for a, p in sockets if not (a.startswith("127.") or a == "::1")]


def strace_destinations(text: str) -> list[str]:
    """IPv4/IPv6 destination addresses of every sendto/sendmsg/sendmmsg/connect in ``strace -f`` output."""
    import re
    out = []
    for line in text.splitlines():
        if not re.search(r"\b(sendto|sendmsg|sendmmsg|connect)\(", line):
            continue
        out += re.findall(r'sin_addr=inet_addr\("([0-9.]+)"\)', line)
        out += re.findall(r'inet_pton\(AF_INET6, "([0-9a-fA-F:.]+)"', line)
    return out


def non_loopback_destinations(addresses: list[str]) -> list[str]:
    """The destinations outside 127.0.0.0/8 and ::1 (0.0.0.0 counts: it means 'this host' only for connect)."""
    return sorted({a for a in addresses if not (a.startswith("127.") or a == "::1")})
