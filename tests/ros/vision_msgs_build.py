"""Build the test-only vision_msgs interface package (tests/ros/vision_msgs) with cmake into a test prefix.

The recipe is the Makefile's for vsgg_msgs (ENVIRONMENT.md §9: cmake configure / build / install against the ROS 2
wheels in .venv, whose *Export.cmake files `make ros` has already repointed), but the install prefix is
``build/test_vision_msgs/<hash>/install``, never .venv: the real vision_msgs is not a dependency of vsgg, and a
test must not change the environment it tests. ``<hash>`` covers every file of the package, so a changed .msg
builds a new prefix and an unchanged one is reused (the build takes tens of seconds on 2 cores); older prefixes
are deleted. A file lock makes concurrent test runs build once.

Using the prefix needs three things the ROS setup scripts would do: its site-packages on the Python path, its
lib/ on LD_LIBRARY_PATH (rosidl's type-support dispatch dlopens ``libvision_msgs__rosidl_typesupport_*.so`` by
bare name, resolved with the search path the process started with) and the prefix on AMENT_PREFIX_PATH.
``InterfacePrefix.child_env`` gives a node process all three; ``load_here`` makes them work in this already
running process by loading the libraries first.
"""
from __future__ import annotations

import ctypes
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "tests" / "ros" / "vision_msgs"
BUILD_ROOT = ROOT / "build" / "test_vision_msgs"
STAMP = "vsgg-build.json"  # written into the install prefix last: its presence means the build completed


@dataclass(frozen=True)
class InterfacePrefix:
    """An installed interface package. ``build_s``: seconds the cmake build took (when it was built, or when the
    reused prefix was built)."""

    install: Path
    build_s: float
    reused: bool

    @property
    def lib(self) -> Path:
        return self.install / "lib"

    @property
    def site_packages(self) -> Path:
        return self.lib / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"

    def child_env(self, base: dict | None = None) -> dict:
        """PYTHONPATH, LD_LIBRARY_PATH and AMENT_PREFIX_PATH of ``base`` (default os.environ) with this prefix
        first: what a node process needs to import and use the package."""
        base = dict(os.environ if base is None else base)

        def first(var, value):
            return os.pathsep.join([str(value)] + [p for p in base.get(var, "").split(os.pathsep) if p])
        return {"PYTHONPATH": first("PYTHONPATH", self.site_packages),
                "LD_LIBRARY_PATH": first("LD_LIBRARY_PATH", self.lib),
                "AMENT_PREFIX_PATH": first("AMENT_PREFIX_PATH", self.install)}

    def load_here(self) -> None:
        """Make the package importable and usable in this process (started without the prefix's library path):
        its libraries are loaded once with RTLD_GLOBAL, so the by-name dlopen of the dispatch finds them loaded."""
        for so in sorted(self.lib.glob("lib*.so")):
            ctypes.CDLL(str(so), mode=ctypes.RTLD_GLOBAL)
        if str(self.site_packages) not in sys.path:
            sys.path.insert(0, str(self.site_packages))
        os.environ["AMENT_PREFIX_PATH"] = self.child_env()["AMENT_PREFIX_PATH"]


def package_hash(package: Path = PACKAGE) -> str:
    """16 hex digits over the relative path and bytes of every file of the package (.msg, CMakeLists, package.xml)
    and this Python's version (the generated extension modules are built for it)."""
    h = hashlib.sha256(sys.version.encode())
    for f in sorted(p for p in package.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(package)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build(venv: Path = ROOT / ".venv", package: Path = PACKAGE, build_root: Path = BUILD_ROOT) -> InterfacePrefix:
    """The installed prefix of ``package`` built against the ROS 2 of ``venv``: reused when one of the same hash
    exists, else built (cmake, 2 jobs). RuntimeError with the end of the build log when cmake fails."""
    key = package_hash(package)
    work = build_root / key
    install = work / "install"
    build_root.mkdir(parents=True, exist_ok=True)
    with open(build_root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second test run waits here, then finds the prefix built
        if (install / STAMP).is_file():
            return InterfacePrefix(install, json.loads((install / STAMP).read_text())["build_s"], reused=True)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        bin_dir = venv / "bin"
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
               "AMENT_PREFIX_PATH": str(venv), "CMAKE_PREFIX_PATH": str(venv)}
        python = bin_dir / "python"
        steps = [["cmake", "-S", str(package), "-B", str(work / "build"), f"-DCMAKE_INSTALL_PREFIX={install}",
                  f"-DPython3_EXECUTABLE={python}", "-DBUILD_TESTING=OFF",
                  # installed libraries find each other without LD_LIBRARY_PATH (the dispatch still needs it)
                  f"-DCMAKE_INSTALL_RPATH={install / 'lib'}"],
                 ["cmake", "--build", str(work / "build"), "-j2"],
                 ["cmake", "--install", str(work / "build")]]
        t0 = time.monotonic()
        with open(work / "build.log", "w") as log:
            for cmd in steps:
                r = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
                if r.returncode:
                    log.flush()
                    tail = (work / "build.log").read_text()[-4000:]
                    raise RuntimeError(f"building {package.name} failed at {' '.join(cmd[:2])} (rc {r.returncode}); "
                                       f"log {work / 'build.log'}:\n{tail}")
        build_s = time.monotonic() - t0
        (install / STAMP).write_text(json.dumps({"build_s": round(build_s, 1), "python": sys.version}))
        for old in build_root.iterdir():  # prefixes of earlier package versions
            if old.is_dir() and old.name != key:
                shutil.rmtree(old, ignore_errors=True)
        return InterfacePrefix(install, build_s, reused=False)
