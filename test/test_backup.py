"""Backups and restores (#18), and one server per data folder: the real command against a
real server process under concurrent writes."""
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest
import requests

from conftest import ADMIN_KEY, free_port, make_config
from helpers import LOAD_SKILLS, Writer, bearer, opt_in, read_jsonl, serve
from server_process import ServerProcess, raw_pair
from ovos_skill_personal_backend.backend import backup
from ovos_skill_personal_backend.backend.store import FolderInUse, FolderLock, Store

COMMAND = [sys.executable, "-m", "ovos_skill_personal_backend.backend.cli"]


def command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=120)


def folder_args(tmp_path: Path, name: str) -> list:
    return ["--data-dir", str(tmp_path / name), "--config", str(tmp_path / f"{name}.conf")]


def server_for(tmp_path: Path, name: str) -> ServerProcess:
    (tmp_path / f"{name}.conf").write_text(json.dumps({"server": {"admin_key": ADMIN_KEY}}))
    return ServerProcess("--port", str(free_port()), *folder_args(tmp_path, name)).start()


def url_of(server: ServerProcess) -> str:
    return server.banner.split("serving on ")[1].split()[0]


def fingerprint(folder: Path) -> dict:
    """Every data file with its content (the lock file only names its last holder)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


@pytest.fixture
def household(tmp_path):
    """A folder with an opted-in device, its metrics and settings, and its archive (taken
    while served; the server stopped since)."""
    server = server_for(tmp_path, "home")
    try:
        url = url_of(server)
        login = raw_pair(url)
        opt_in(url, login["uuid"])
        writer = Writer(url, "w", login, writes=20)
        writer.run()
        assert not writer.failures, writer.failures
        archive = tmp_path / "backup.tar.gz"
        done = command("backup", "--output", str(archive), *folder_args(tmp_path, "home"))
        assert done.returncode == 0, done.stderr
    finally:
        server.stop()
    return {"login": login, "archive": archive, "writer": writer}


def test_a_backup_taken_under_writes_restores_every_acknowledged_write(tmp_path):
    """Writers keep going while the backup runs; every write acknowledged before it began is
    in it, and the restored folder serves the same devices with their tokens."""
    server = server_for(tmp_path, "home")
    archive = tmp_path / "backup.tar.gz"
    try:
        url = url_of(server)
        logins = [raw_pair(url) for _ in range(3)]
        for login in logins:
            opt_in(url, login["uuid"])
        stop = threading.Event()
        writers = [Writer(url, f"w{n}", login, stop=stop) for n, login in enumerate(logins)]
        for writer in writers:
            writer.start()
        while sum(len(w.acked["metric"]) for w in writers) < 30:
            threading.Event().wait(0.05)
        before = {kind: [list(w.acked[kind]) for w in writers] for kind in ("metric", "setting", "pairing")}
        done = command("backup", "--output", str(archive), *folder_args(tmp_path, "home"))
        stop.set()
        for writer in writers:
            writer.join(60)
        assert done.returncode == 0, done.stderr
    finally:
        server.stop()
    assert stat.S_IMODE(os.stat(archive).st_mode) == 0o600  # it holds secrets
    restored = command("restore", str(archive), *folder_args(tmp_path, "elsewhere"))
    assert restored.returncode == 0, restored.stderr
    metrics = {(m["meta"]["writer"], m["meta"]["seq"]) for m in read_jsonl(tmp_path / "elsewhere" / "metrics.jsonl")}
    acked = [key for keys in before["metric"] for key in keys]
    assert acked and [key for key in acked if key not in metrics] == []
    with serve(make_config(tmp_path / "elsewhere")) as again:
        for login in logins + [p for ps in before["pairing"] for p in ps]:
            answer = requests.get(f"{again.url}/v1/device/{login['uuid']}", timeout=10,
                                  headers=bearer(login["accessToken"]))
            assert answer.status_code == 200, answer.text
        shared = {skill: requests.get(f"{again.url}/v1/admin/skill_settings/{skill}", timeout=10,
                                      headers=bearer(ADMIN_KEY)).json().get("settings", {})
                  for skill in LOAD_SKILLS}
    # settings writers share records: each acknowledged value is there unless a later one
    # (also acknowledged before the backup) replaced it under the same name (never: names differ)
    missing = [(skill, name) for writes in before["setting"] for skill, name, value in writes
               if shared[skill].get(name) != value]
    assert missing == []


def test_restore_keeps_the_old_data_as_a_dated_copy(household, tmp_path):
    (tmp_path / "other").mkdir()
    Store(str(tmp_path / "other")).metrics.append({"metric_id": "x", "metric_type": "t", "uuid": "",
                                                   "timestamp": 1.0, "meta": {}})
    before = fingerprint(tmp_path / "other")
    done = command("restore", str(household["archive"]), *folder_args(tmp_path, "other"))
    assert done.returncode == 0, done.stderr
    (kept,) = [p for p in tmp_path.iterdir() if p.name.startswith("other.before-restore-")]
    assert fingerprint(kept) == before
    assert household["login"]["uuid"] in Store(str(tmp_path / "other")).devices.keys()


def _rewritten(archive: Path, target: Path, change) -> Path:
    """A copy of `archive` whose members went through `change(name, data) -> data or None`."""
    with tarfile.open(archive) as source, tarfile.open(target, "w:gz") as out:
        for member in source.getmembers():
            data = change(member.name, source.extractfile(member).read())
            if data is not None:
                member.size = len(data)
                out.addfile(member, io.BytesIO(data))
    return target


def _device_member(name: str) -> bool:
    return name.startswith("data/devices/")


@pytest.mark.parametrize("damage, words", [
    ("truncated", "not a whole backup archive"),
    ("altered", "does not match its checksum"),
    ("missing", "missing from the archive"),
    ("wrong shape", "cannot read"),
    ("newer format", "backup format version 99"),
])
def test_a_bad_archive_is_refused_and_nothing_changes(household, tmp_path, damage, words):
    archive = household["archive"]
    bad = tmp_path / "bad.tar.gz"
    if damage == "truncated":
        bad.write_bytes(archive.read_bytes()[:-200])
    elif damage == "altered":
        _rewritten(archive, bad, lambda name, data: data.replace(b"metric", b"metrix")
                   if name == "data/metrics.jsonl" else data)
    elif damage == "missing":
        _rewritten(archive, bad, lambda name, data: None if _device_member(name) else data)
    elif damage == "wrong shape":  # checksums made to match: the records themselves are checked
        wrong = json.dumps({"uuid": 7, "tokens": "none"}).encode()

        def reshape(name, data):
            if _device_member(name):
                return wrong
            if name == "manifest.json":
                manifest = json.loads(data)
                for file, entry in manifest["files"].items():
                    if _device_member(file):
                        entry["sha256"] = hashlib.sha256(wrong).hexdigest()
                return json.dumps(manifest).encode()
            return data
        _rewritten(archive, bad, reshape)
    else:
        _rewritten(archive, bad, lambda name, data: json.dumps({**json.loads(data), "version": 99}).encode()
                   if name == "manifest.json" else data)
    before = fingerprint(tmp_path / "home")
    done = command("restore", str(bad), *folder_args(tmp_path, "home"))
    assert done.returncode == 2 and words in done.stderr, done.stderr
    assert "nothing was changed" in done.stderr
    assert fingerprint(tmp_path / "home") == before
    assert not [p for p in tmp_path.iterdir() if ".before-restore-" in p.name or ".restoring-" in p.name]


def test_a_folder_in_use_refuses_a_second_server_a_restore_and_an_import(household, tmp_path):
    first = server_for(tmp_path, "home")
    try:
        before = fingerprint(tmp_path / "home")
        holder = f"process {first.proc.pid} (ovos-personal-backend serving it)"
        second = ServerProcess("--port", str(free_port()), *folder_args(tmp_path, "home")).start(wait_for=None)
        assert second.wait(30) == 2
        assert holder in second.text
        done = command("restore", str(household["archive"]), *folder_args(tmp_path, "home"))
        assert done.returncode == 2 and holder in done.stderr
        done = command("import-legacy", "--home", str(tmp_path), *folder_args(tmp_path, "home"))
        assert done.returncode == 2 and holder in done.stderr
        assert fingerprint(tmp_path / "home") == before
    finally:
        first.stop()


def test_the_lock_goes_with_its_holder(tmp_path):
    with FolderLock(str(tmp_path), "a test"):
        with pytest.raises(FolderInUse, match=f"process {os.getpid()} \\(a test\\)"):
            FolderLock(str(tmp_path), "another")
    FolderLock(str(tmp_path), "after").release()


def test_the_manifest_counts_and_checks_every_file(household):
    checked = backup.check(str(household["archive"]))
    manifest = checked["manifest"]
    paired = 1 + len(household["writer"].acked["pairing"])
    assert manifest["version"] == backup.VERSION and manifest["counts"]["devices"] == paired
    assert manifest["counts"]["metrics"] == len(household["writer"].acked["metric"])
    assert "config.json" in manifest["files"] and all(
        name.startswith("data/") for name in manifest["files"] if name not in ("config.json",))


def test_daily_backups_keep_the_retention_and_always_the_newest(tmp_path):
    """What the skill runs every day (backup.keep_dated): a dated archive, owner-only; those
    older than the retention go, the newest never does."""
    store = Store(str(tmp_path / "data"))
    folder = tmp_path / "backups"
    folder.mkdir()
    old = folder / "ovos-personal-backend-20200101-000000.tar.gz"
    old.write_bytes(b"an old backup")
    recent = folder / "ovos-personal-backend-20200102-000000.tar.gz"
    recent.write_bytes(b"a recent one")
    os.utime(old, (1, 1))  # 1970: far past any retention
    made = backup.keep_dated(store, None, str(folder), keep_days=7)
    assert stat.S_IMODE(os.stat(made).st_mode) == 0o600
    assert backup.check(made)["manifest"]["counts"]["devices"] == 0
    assert sorted(backup.archives(str(folder))) == sorted([made, str(recent)])
    assert backup.latest(str(folder)) == os.path.getmtime(made)
