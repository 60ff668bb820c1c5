"""A minimal bpf(2) binding through ctypes, for tests and examples (x86_64 Linux).

No dependency beyond the standard library: the three commands an array map
needs (create, lookup, update), each a raw `syscall(321, cmd, &attr, size)`.
Every function raises OSError with the kernel's errno on failure; a caller
that wants to skip where bpf() is not allowed checks `err.errno in
(errno.EPERM, errno.ENOSYS)`.

The number returned by `create_array_map` is a plain descriptor: wrap it in
`rcfd.FD(fd, os.close)` and pass the borrowed number to `lookup`/`update`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import struct

SYS_BPF = 321  # x86_64
BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_TYPE_ARRAY = 2
BPF_ANY = 0

_ATTR_SIZE = 128  # larger than every union bpf_attr member these commands use; zero-filled

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_syscall.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint]


def supported_machine() -> bool:
    """True where SYS_BPF is 321 (x86_64); elsewhere these helpers must not be called."""
    return platform.machine() == "x86_64"


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    ret = int(_syscall(SYS_BPF, cmd, ctypes.addressof(attr), _ATTR_SIZE))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf(cmd={cmd}): {os.strerror(err)}")
    return ret


def create_array_map(max_entries: int, value_size: int = 8) -> int:
    """BPF_MAP_CREATE of a BPF_MAP_TYPE_ARRAY with u32 keys; returns the map's descriptor.

    The descriptor is close-on-exec (the kernel always sets O_CLOEXEC for bpf fds).
    """
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    # map_type, key_size, value_size, max_entries, map_flags (all u32)
    struct.pack_into("=IIIII", attr, 0, BPF_MAP_TYPE_ARRAY, 4, value_size, max_entries, 0)
    return _bpf(BPF_MAP_CREATE, attr)


def _elem_attr(
    map_fd: int, key: ctypes.Array[ctypes.c_char], value: ctypes.Array[ctypes.c_char], flags: int
) -> ctypes.Array[ctypes.c_char]:
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    # map_fd u32, 4 bytes padding, key u64 pointer, value u64 pointer, flags u64
    struct.pack_into(
        "=I4xQQQ", attr, 0, map_fd, ctypes.addressof(key), ctypes.addressof(value), flags
    )
    return attr


def lookup(map_fd: int, key: int, value_size: int = 8) -> bytes:
    """BPF_MAP_LOOKUP_ELEM: the value stored under u32 `key`."""
    k = ctypes.create_string_buffer(struct.pack("=I", key), 4)
    v = ctypes.create_string_buffer(value_size)
    _bpf(BPF_MAP_LOOKUP_ELEM, _elem_attr(map_fd, k, v, 0))
    return v.raw


def update(map_fd: int, key: int, value: bytes) -> None:
    """BPF_MAP_UPDATE_ELEM (BPF_ANY): store `value` under u32 `key`."""
    k = ctypes.create_string_buffer(struct.pack("=I", key), 4)
    v = ctypes.create_string_buffer(value, len(value))
    _bpf(BPF_MAP_UPDATE_ELEM, _elem_attr(map_fd, k, v, BPF_ANY))


def map_id(map_fd: int) -> int:
    """The kernel's id of the map behind `map_fd` (from /proc/self/fdinfo), unique per map
    for the life of the system: two maps never share it, unlike their descriptor numbers."""
    with open(f"/proc/self/fdinfo/{map_fd}") as f:
        for line in f:
            if line.startswith("map_id:"):
                return int(line.split()[1])
    raise OSError(f"fd {map_fd} is not a bpf map")
