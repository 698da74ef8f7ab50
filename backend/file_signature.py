"""What a file looks like now, cheaply enough to ask on every request.

The store checks a record's file before serving it, so an edit by hand is seen at the
next request. `os.stat` releases the GIL for the system call; under load another request
thread takes it, and the caller then waits for it back: measured, each stat on the device
hot path cost ~55 us of CPU per request in thread switches, against ~2 us for the call.
`signature` makes the same call (Linux `statx`, glibc >= 2.28) through ctypes' `PyDLL`,
which keeps the GIL: a stat of a file just read is answered from the inode cache in
microseconds, so holding the GIL over it is cheaper than handing it over. Elsewhere (no
`statx`) it is `os.stat`.
"""
import ctypes
import os
import threading
from errno import ENOENT
from typing import Optional, Tuple

Signature = Tuple[int, int, int]  # (mtime in ns, size, inode)

_AT_FDCWD = -100
_STATX_WANTED = 0x040 | 0x100 | 0x200  # STATX_MTIME | STATX_INO | STATX_SIZE


class _Statx(ctypes.Structure):
    """`struct statx` (linux/stat.h: the same layout on every architecture), with names
    for the fields read here only."""
    _fields_ = [("_head", ctypes.c_char * 32), ("ino", ctypes.c_uint64), ("size", ctypes.c_uint64),
                ("_times", ctypes.c_char * 64), ("mtime_sec", ctypes.c_int64),
                ("mtime_nsec", ctypes.c_uint32), ("_tail", ctypes.c_char * 132)]


def _load_statx():
    try:
        function = ctypes.PyDLL(None, use_errno=True).statx
    except (AttributeError, OSError):  # not Linux, or a C library without statx
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint,
                         ctypes.POINTER(_Statx)]
    function.restype = ctypes.c_int
    return function


_statx = _load_statx()
_buffers = threading.local()  # one answer buffer per thread, made once


def _os_signature(path: str) -> Optional[Signature]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def signature(path: str) -> Optional[Signature]:
    """(mtime ns, size, inode) of `path`, None when it does not exist; any other error
    is raised as `os.stat` raises it."""
    encoded = os.fsencode(path)
    if _statx is None or b"\0" in encoded:  # C would read such a path only up to the NUL
        return _os_signature(path)
    try:
        answer = _buffers.statx
    except AttributeError:
        answer = _buffers.statx = _Statx()
    if _statx(_AT_FDCWD, encoded, 0, _STATX_WANTED, answer) != 0:
        if ctypes.get_errno() == ENOENT:
            return None
        return _os_signature(path)  # raises the error as os.stat words it
    return answer.mtime_sec * 1_000_000_000 + answer.mtime_nsec, answer.size, answer.ino
