"""A full disk and a read-only data folder: clear errors, nothing stored damaged, recovery.

Real file systems, not simulated errors: the standalone server runs in its own mount
namespace (`unshare -rm`) on a small tmpfs mounted over its data folder. The test reaches
that folder through /proc/<pid>/root, fills it up, or remounts it read-only with nsenter.
"""
import json
import os
import shutil
import subprocess

import pytest
import requests

from conftest import ADMIN_KEY, free_port
from helpers import ServerProcess, admin_headers, bearer, opt_in, raw_pair

TMPFS_SIZE = "2m"
# mount a private tmpfs over the data folder ($0), then become the server ("$@")
TMPFS_LAUNCHER = ["unshare", "-rm", "sh", "-c",
                  f'mount -t tmpfs -o size={TMPFS_SIZE},mode=0700 tmpfs "$0" && exec "$@"']


def _namespaces_work() -> bool:
    if not (shutil.which("unshare") and shutil.which("nsenter")):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _namespaces_work(),
                                reason="needs unshare/nsenter and mount namespaces")


@pytest.fixture
def server(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "backend.conf"
    config.write_text(json.dumps({"server": {"admin_key": ADMIN_KEY}}))
    port = free_port()
    process = ServerProcess("--port", str(port), "--data-dir", str(data), "--config", str(config),
                            launcher=[*TMPFS_LAUNCHER, str(data)]).start()
    process.url = f"http://127.0.0.1:{port}"
    process.data = f"/proc/{process.proc.pid}/root{data}"  # the tmpfs, as the server sees it
    process.mountpoint = str(data)
    yield process
    process.stop()


def _remount(server, mode: str) -> None:
    subprocess.run(["nsenter", "-t", str(server.proc.pid), "-m", "mount", "-o",
                    f"remount,{mode}", server.mountpoint], check=True)


def _snapshot(folder: str) -> dict:
    """Every data file's bytes (the test's own filler excluded)."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            if name != "filler":
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    files[os.path.relpath(path, folder)] = f.read()
    return files


def _fill(folder: str) -> str:
    """Write zeros until the file system is full."""
    path = os.path.join(folder, "filler")
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return path


def _populate(url: str) -> dict:
    """A paired, opted-in device with one metric stored (so every data file exists)."""
    login = raw_pair(url)
    opt_in(url, login["uuid"])
    requests.post(f"{url}/v1/device/{login['uuid']}/metric/boot", json={"time": 0.1},
                  headers=bearer(login["accessToken"])).raise_for_status()
    return login


def _writes(url: str, login: dict) -> dict:
    """One request of every kind that writes, with its answer."""
    uuid, headers = login["uuid"], bearer(login["accessToken"])
    meta = {"skill_gid": f"@{uuid}|durable.test", "skillMetadata": {"sections": [
        {"name": "s", "fields": [{"name": "volume", "type": "number", "value": "7"}]}]}}
    return {
        "skill PUT": requests.put(f"{url}/v1/device/{uuid}/skill", json=meta, headers=headers),
        "metric POST": requests.post(f"{url}/v1/device/{uuid}/metric/timing",
                                     json={"time": 1.5}, headers=headers),
        "pairing code": requests.get(f"{url}/v1/device/code",
                                     params={"state": "0b6c9c3e-3f6e-4a53-a3d5-0d0b0f7a8a11"}),
        "admin rename": requests.put(f"{url}/v1/admin/{uuid}/device", json={"name": "Kitchen"},
                                     headers=admin_headers()),
    }


def _assert_refused_clearly(answers: dict) -> None:
    for kind, answer in answers.items():
        assert answer.status_code == 507, (kind, answer.status_code, answer.text)
        assert "cannot" in answer.json()["error"], kind


def _assert_reads_work(url: str, login: dict) -> None:
    answer = requests.get(f"{url}/v1/device/{login['uuid']}/setting",
                          headers=bearer(login["accessToken"]))
    assert answer.status_code == 200 and answer.json()["uuid"] == login["uuid"]


def _metrics_until_refused(url: str, login: dict, most: int = 2000) -> int:
    """Post metrics until the disk refuses one (a file's last page may still have room)."""
    for acked in range(most):
        answer = requests.post(f"{url}/v1/device/{login['uuid']}/metric/timing",
                               json={"n": acked}, headers=bearer(login["accessToken"]))
        if answer.status_code != 200:
            assert answer.status_code == 507, answer.text
            return acked
    raise AssertionError(f"the disk never filled up after {most} metrics")


def test_a_full_disk_refuses_writes_clearly_and_damages_nothing(server):
    login = _populate(server.url)
    filler = _fill(server.data)
    acked = _metrics_until_refused(server.url, login)
    before = _snapshot(server.data)

    _assert_refused_clearly(_writes(server.url, login))
    _assert_reads_work(server.url, login)
    assert _snapshot(server.data) == before  # no partial line, no truncated file
    lines = before["metrics.jsonl"].decode().splitlines()
    assert [json.loads(line)["meta"] for line in lines[1:]] == [{"n": n} for n in range(acked)]

    os.remove(filler)
    answers = _writes(server.url, login)
    assert all(a.status_code == 200 for a in answers.values()), {
        k: (a.status_code, a.text) for k, a in answers.items()}


def test_a_read_only_data_folder_refuses_writes_clearly_and_damages_nothing(server):
    login = _populate(server.url)
    before = _snapshot(server.data)
    _remount(server, "ro")

    _assert_refused_clearly(_writes(server.url, login))
    _assert_reads_work(server.url, login)
    assert _snapshot(server.data) == before

    _remount(server, "rw")
    answers = _writes(server.url, login)
    assert all(a.status_code == 200 for a in answers.values())


def test_the_server_refuses_to_start_on_a_read_only_data_folder(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    read_only = ["unshare", "-rm", "sh", "-c",
                 'mount -t tmpfs tmpfs "$0" && mount -o remount,ro "$0" && exec "$@"', str(data)]
    process = ServerProcess("--port", str(free_port()), "--data-dir", str(data),
                            "--config", str(tmp_path / "none.conf"), launcher=read_only)
    process.start(wait_for=None)
    assert process.wait() == 2
    assert "not writable" in process.text
