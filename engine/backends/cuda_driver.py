"""The few CUDA driver-API calls the TensorRT backend needs (device check, name, memory, one stream), via ctypes.

The driver library (libcuda.so.1) ships with every NVIDIA driver, so this needs no extra Python package (pycuda,
cuda-python) and lets ``cuda_device_count`` answer "is there a GPU" without constructing any TensorRT object:
TensorRT objects created without a working CUDA device crash the process when they are destroyed
(ENVIRONMENT.md section 3), so every TensorRT import in vsgg sits behind ``cuda_device_count() > 0``.
"""
from __future__ import annotations

import ctypes
import sys
from ctypes import byref, c_int, c_size_t, c_uint, c_uint64, c_void_p

import numpy as np

_LIB_NAMES = ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so")
_ATTR_CC_MAJOR, _ATTR_CC_MINOR = 75, 76  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR


def _load():
    for name in _LIB_NAMES:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def cuda_device_count() -> int:
    """Number of CUDA devices the driver reports; 0 when there is no driver, no device, or cuInit fails."""
    lib = _load()
    if lib is None:
        return 0
    n = c_int(0)
    try:
        if lib.cuInit(c_uint(0)) != 0 or lib.cuDeviceGetCount(byref(n)) != 0:
            return 0
    except AttributeError:
        return 0
    return int(n.value)


class CudaDriver:
    """One CUDA device's primary context (shared with the CUDA runtime TensorRT uses) and one stream.

    Device pointers are Python ints. Host arrays must be C-contiguous numpy arrays kept alive until ``sync()``.
    """

    def __init__(self, device: int = 0):
        if cuda_device_count() <= device:
            raise RuntimeError(f"no CUDA device {device} (driver missing or no GPU)")
        lib = self._lib = _load()
        lib.cuMemAlloc_v2.argtypes = [ctypes.POINTER(c_uint64), c_size_t]
        lib.cuMemFree_v2.argtypes = [c_uint64]
        lib.cuMemcpyHtoDAsync_v2.argtypes = [c_uint64, c_void_p, c_size_t, c_void_p]
        lib.cuMemcpyDtoHAsync_v2.argtypes = [c_void_p, c_uint64, c_size_t, c_void_p]
        lib.cuStreamSynchronize.argtypes = [c_void_p]
        self._dev = c_int()
        self._check(lib.cuDeviceGet(byref(self._dev), c_int(device)), "cuDeviceGet")
        self._ctx = c_void_p()
        self._check(lib.cuDevicePrimaryCtxRetain(byref(self._ctx), self._dev), "cuDevicePrimaryCtxRetain")
        self._check(lib.cuCtxSetCurrent(self._ctx), "cuCtxSetCurrent")
        self._stream = c_void_p()
        self._check(lib.cuStreamCreate(byref(self._stream), c_uint(0)), "cuStreamCreate")
        self._allocs: set[int] = set()

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            name = ctypes.c_char_p()
            self._lib.cuGetErrorName(c_int(rc), byref(name))
            raise RuntimeError(f"CUDA {what} failed: {rc} {name.value.decode() if name.value else ''}")

    @property
    def stream(self) -> int:
        """The stream handle as an int (what TensorRT's execute_async_v3 takes)."""
        return int(self._stream.value or 0)

    def device_name(self) -> str:
        buf = ctypes.create_string_buffer(256)
        self._check(self._lib.cuDeviceGetName(buf, c_int(256), self._dev), "cuDeviceGetName")
        return buf.value.decode(errors="replace")

    def compute_capability(self) -> str:
        major, minor = c_int(), c_int()
        self._check(self._lib.cuDeviceGetAttribute(byref(major), c_int(_ATTR_CC_MAJOR), self._dev), "attribute")
        self._check(self._lib.cuDeviceGetAttribute(byref(minor), c_int(_ATTR_CC_MINOR), self._dev), "attribute")
        return f"{major.value}.{minor.value}"

    def alloc(self, nbytes: int) -> int:
        ptr = c_uint64()
        self._check(self._lib.cuMemAlloc_v2(byref(ptr), c_size_t(max(int(nbytes), 1))), "cuMemAlloc")
        self._allocs.add(ptr.value)
        return int(ptr.value)

    def free(self, ptr: int) -> None:
        if ptr in self._allocs:
            self._allocs.discard(ptr)
            self._lib.cuMemFree_v2(c_uint64(ptr))

    def to_device(self, dst: int, host: np.ndarray) -> None:
        if host.nbytes:
            self._check(self._lib.cuMemcpyHtoDAsync_v2(c_uint64(dst), c_void_p(host.ctypes.data), c_size_t(host.nbytes),
                                                       self._stream), "cuMemcpyHtoDAsync")

    def to_host(self, host: np.ndarray, src: int) -> None:
        if host.nbytes:
            self._check(self._lib.cuMemcpyDtoHAsync_v2(c_void_p(host.ctypes.data), c_uint64(src), c_size_t(host.nbytes),
                                                       self._stream), "cuMemcpyDtoHAsync")

    def sync(self) -> None:
        self._check(self._lib.cuStreamSynchronize(self._stream), "cuStreamSynchronize")

    def close(self) -> None:
        """Free every allocation, the stream and the context reference. Idempotent."""
        if getattr(self, "_lib", None) is None:
            return
        for p in list(self._allocs):
            self.free(p)
        if self._stream.value:
            self._lib.cuStreamDestroy_v2(self._stream)
            self._stream = c_void_p()
        self._lib.cuDevicePrimaryCtxRelease_v2(self._dev)
        self._lib = None
