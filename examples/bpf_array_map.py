"""An eBPF array map shared by worker threads, closed while they use it.

    python3 examples/bpf_array_map.py      # from the checkout; nothing to install

Four threads write to their own slot of a BPF_MAP_TYPE_ARRAY through
bpf(2), each call under a borrow of one rcfd.FD. The main thread closes the
map while they are still writing. close() refuses new borrows at once, waits
for the bpf() calls in flight, then closes the map once: no thread ever
passes the number to bpf() after it was closed (when the kernel may have
handed it to an unrelated file). Each worker stops at its first
ClosedFDError.

bpf(2) needs CAP_BPF (or root, or unprivileged BPF enabled); where it is
refused the example says so and exits 0. The binding is a minimal ctypes
one, kept here so that the example stands alone.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import struct
import sys
import threading

# From a checkout, any Python 3.11+ runs this without installing rcfd: the
# checkout's rcfd/ goes first on the path. (Installed, rcfd needs none of this.)
_checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isfile(os.path.join(_checkout, "rcfd", "__init__.py")):
    sys.path.insert(0, _checkout)

import rcfd  # noqa: E402

# -- a minimal bpf(2) binding ------------------------------------------------

SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine())
BPF_MAP_CREATE, BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM = 0, 1, 2
BPF_MAP_TYPE_ARRAY = 2
ATTR_SIZE = 128  # a zero-filled union bpf_attr, larger than the members used here

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.syscall.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint]


def bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    if SYS_BPF is None:
        raise OSError(errno.ENOSYS, f"bpf(2) number unknown on {platform.machine()}")
    ret = int(libc.syscall(SYS_BPF, cmd, ctypes.addressof(attr), ATTR_SIZE))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf: {os.strerror(err)}")
    return ret


def create_array_map(value_size: int, max_entries: int) -> int:
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    # map_type, key_size, value_size, max_entries (u32 each)
    struct.pack_into("=IIII", attr, 0, BPF_MAP_TYPE_ARRAY, 4, value_size, max_entries)
    return bpf(BPF_MAP_CREATE, attr)


def elem_op(cmd: int, map_fd: int, key: int, value: ctypes.Array[ctypes.c_char]) -> None:
    """LOOKUP or UPDATE one element; `key` and `value` stay alive for the call."""
    keybuf = ctypes.c_uint32(key)
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    # map_fd (u32), padding, key pointer (u64), value pointer (u64), flags (u64: BPF_ANY)
    struct.pack_into(
        "=IIQQQ", attr, 0, map_fd, 0, ctypes.addressof(keybuf), ctypes.addressof(value), 0
    )
    bpf(cmd, attr)


def update(map_fd: int, key: int, value: int) -> None:
    buf = ctypes.create_string_buffer(struct.pack("=Q", value), 8)
    elem_op(BPF_MAP_UPDATE_ELEM, map_fd, key, buf)


def lookup(map_fd: int, key: int) -> int:
    buf = ctypes.create_string_buffer(8)
    elem_op(BPF_MAP_LOOKUP_ELEM, map_fd, key, buf)
    value: int = struct.unpack("=Q", buf.raw)[0]
    return value


# -- the program -------------------------------------------------------------

WORKERS = 4
WARMUP = 200  # updates per worker before the main thread closes the map


def worker(bpf_map: rcfd.FD, slot: int, warm: threading.Event, written: list[int]) -> None:
    """Write 1, 2, 3, ... into `slot` until the map is closed."""
    n = 0
    while True:
        try:
            bpf_map.do(functools.partial(update, key=slot, value=n + 1))
        except rcfd.ClosedFDError:
            break  # close() began: no bpf() call is made with the number any more
        n += 1
        if n == WARMUP:
            warm.set()
    written[slot] = n


def main() -> int:
    try:
        raw = create_array_map(value_size=8, max_entries=WORKERS)
    except OSError as err:
        if err.errno in (errno.EPERM, errno.ENOSYS, errno.EACCES):
            print(f"bpf(2) is not available here ({err.strerror}); nothing to show")
            return 0
        raise
    bpf_map = rcfd.FD(raw, os.close)
    written = [0] * WORKERS
    warm = [threading.Event() for _ in range(WORKERS)]
    threads = [
        threading.Thread(target=worker, args=(bpf_map, i, warm[i], written))
        for i in range(WORKERS)
    ]
    for t in threads:
        t.start()
    for e in warm:
        if not e.wait(30):
            print("a worker never got going", file=sys.stderr)
            return 1
    # Every slot holds what its worker wrote last, read under borrows.
    snapshot = [bpf_map.do(functools.partial(lookup, key=i)) for i in range(WORKERS)]
    bpf_map.close()  # while the workers still write: waits for the bpf() calls in flight
    for t in threads:
        t.join()
    print(f"map values before close: {snapshot}")
    print(f"updates per worker until close: {written}")
    print(f"after close: {bpf_map!r}")
    # Each worker got at least WARMUP updates through, and every update it
    # counted succeeded: none hit a closed (or reused) number.
    if min(written) < WARMUP or any(v > w for v, w in zip(snapshot, written, strict=True)):
        print("inconsistent counts", file=sys.stderr)
        return 1
    print("ok: the map was closed once, after the last bpf() call under a borrow returned")
    return 0


if __name__ == "__main__":
    sys.exit(main())
