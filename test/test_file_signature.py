"""The store's freshness check: what `signature` says is what `os.stat` says."""
import ctypes
import os
import sys
import time

import pytest

from ovos_skill_personal_backend.backend import file_signature


def _from_os(path):
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size, st.st_ino


@pytest.fixture(params=["statx", "os.stat"])
def signature(request, monkeypatch):
    """Both ways: statx where the C library has it, os.stat elsewhere."""
    if request.param == "os.stat":
        monkeypatch.setattr(file_signature, "_statx", None)
    elif file_signature._statx is None:
        pytest.skip("no statx in this C library")
    return file_signature.signature


def test_a_file_and_a_folder_read_as_os_stat_reads_them(tmp_path, signature):
    path = tmp_path / "record.json"
    path.write_text("{}")
    assert signature(str(path)) == _from_os(path)
    assert signature(str(tmp_path)) == _from_os(tmp_path)


def test_an_edit_and_a_replacement_change_the_signature(tmp_path, signature):
    path = tmp_path / "record.json"
    path.write_text("{}")
    first = signature(str(path))
    os.utime(path, ns=(time.time_ns(), first[0] + 1))  # same size, a later mtime
    assert signature(str(path)) not in (None, first)
    aside = tmp_path / "aside.json"
    aside.write_text("[]")
    os.replace(aside, path)  # as an editor saves: another inode
    assert signature(str(path)) == _from_os(path) and signature(str(path))[2] != first[2]


def test_a_missing_file_is_none_and_other_errors_are_raised_as_os_stat_raises_them(tmp_path, signature):
    assert signature(str(tmp_path / "absent.json")) is None
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        signature(str(tmp_path / "file" / "below"))
    with pytest.raises(ValueError):  # as os.stat: a NUL in a path
        signature(str(tmp_path / "a\0b"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="statx is Linux's")
def test_statx_is_called_with_the_gil_held():
    """The point of the module: a CDLL call would hand the GIL over at each request."""
    assert file_signature._statx is not None
    assert file_signature._statx._flags_ & ctypes._FUNCFLAG_PYTHONAPI
