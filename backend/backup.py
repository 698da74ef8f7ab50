"""Backups the owner can restore: one archive of everything (config, devices, skill
settings, metrics, recordings, OAuth), taken while the server serves.

The archive is a gzipped tar holding `data/...` (every file the store enumerates,
`Store.export`: this module never names the store's files), `config.json` (the
config file, when there is one) and `manifest.json`: its format version, when it
was made, how many records each collection held, and the SHA-256 and size of every
file. It is created owner-only: it holds the admin key, API keys, token hashes and
OAuth tokens.

A restore checks the whole archive before changing anything (format version,
checksums, no file missing or added, every record parses and has its shape, the
counts match), then puts the data in place and keeps what was there as a dated copy
beside it. Restored on another machine, it gives the same household: the token
hashes come along, so every device keeps working.
"""
import hashlib
import io
import json
import os
import shutil
import tarfile
import time
from os.path import basename, dirname, exists, join
from typing import Dict, Optional

from . import config as config_module
from .errors import BadRequest
from .store import FolderLock, Store, _make_folder

FORMAT = "ovos-personal-backend-backup"
VERSION = 1
MANIFEST = "manifest.json"
CONFIG = "config.json"
DATA = "data/"


class BadBackup(BadRequest):
    """The archive cannot be restored; nothing was changed."""


def default_name(now: Optional[float] = None) -> str:
    return time.strftime("ovos-personal-backend-%Y%m%d-%H%M%S.tar.gz", time.localtime(now))


def _add(archive: tarfile.TarFile, name: str, data: bytes, when: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(when), 0o600
    archive.addfile(info, io.BytesIO(data))


def write(store: Store, config_path: Optional[str], output) -> dict:
    """Write the archive of `store` (and the config file at `config_path`) to `output`,
    a path (created owner-only, never overwritten) or a binary file object; the manifest."""
    if isinstance(output, str):
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            manifest = write(store, config_path, f)
            f.flush()
            os.fsync(f.fileno())
        return manifest
    now = time.time()
    counts: Dict[str, int] = {}
    files: Dict[str, dict] = {}
    with tarfile.open(fileobj=output, mode="w:gz") as archive:
        for relative, data in store.export(counts):
            name = DATA + relative
            files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            _add(archive, name, data, now)
        if config_path and exists(config_path):
            with open(config_path, "rb") as f:
                data = f.read()
            files[CONFIG] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            _add(archive, CONFIG, data, now)
        manifest = {"format": FORMAT, "version": VERSION, "created_at": now,
                    "counts": counts, "files": files}
        _add(archive, MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode(), now)
    return manifest


def _read_archive(path: str) -> Dict[str, bytes]:
    """{member name: content} of a backup archive; BadBackup for anything but one."""
    try:
        with tarfile.open(path, mode="r:gz") as archive:
            members = {}
            for member in archive.getmembers():
                name = member.name
                if not member.isfile() or name.startswith("/") or ".." in name.split("/"):
                    raise BadBackup(f"{basename(path)}: {name[:100]!r} is not a plain file of "
                                    "a backup; nothing was changed")
                members[name] = archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise BadBackup(f"{basename(path)} is not a whole backup archive ({e}); "
                        "nothing was changed") from e
    return members


def check(path: str) -> dict:
    """The manifest and contents of a sound archive: `{"manifest", "members"}`.
    BadBackup names what is wrong (format, checksum, missing or added file)."""
    members = _read_archive(path)
    try:
        manifest = json.loads(members.pop(MANIFEST))
        if manifest.get("format") != FORMAT:
            raise ValueError("not an ovos-personal-backend backup")
    except (KeyError, ValueError, AttributeError) as e:
        raise BadBackup(f"{basename(path)}: no readable manifest ({e}); nothing was changed") from e
    if manifest.get("version") != VERSION:
        raise BadBackup(f"{basename(path)}: backup format version {manifest.get('version')!r} "
                        f"(this backend restores version {VERSION}); nothing was changed")
    listed = manifest.get("files") or {}
    for name in sorted(set(listed) | set(members)):
        if name not in members or name not in listed:
            where = "missing from the archive" if name not in members else "not in the manifest"
            raise BadBackup(f"{basename(path)}: {name} is {where}; nothing was changed")
        if hashlib.sha256(members[name]).hexdigest() != listed[name].get("sha256"):
            raise BadBackup(f"{basename(path)}: {name} does not match its checksum (altered or "
                            "damaged); nothing was changed")
    config = None
    if CONFIG in members:
        try:
            config = json.loads(members[CONFIG])
        except ValueError:
            config = None
        if not isinstance(config, dict):
            raise BadBackup(f"{basename(path)}: {CONFIG} is not a JSON object; nothing was changed")
    return {"manifest": manifest, "members": members, "config": config}


def _stage(data_path: str, checked: dict) -> str:
    """Write the archive's data beside `data_path` and load it as a store, which refuses
    a record that does not parse or lacks its shape; the staging folder."""
    staging = f"{data_path}.restoring-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    _make_folder(staging)
    try:
        for name, data in checked["members"].items():
            if name.startswith(DATA):
                target = join(staging, name[len(DATA):])
                _make_folder(dirname(target))
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
        counts = Store(staging).counts()
        expected = checked["manifest"].get("counts") or {}
        wrong = {k: (counts.get(k), n) for k, n in expected.items() if counts.get(k) != n}
        if wrong:
            raise BadBackup(f"records that do not read back: {wrong} (found, listed); "
                            "nothing was changed")
    except BadBackup:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except Exception as e:  # StorageError: a record the store refuses
        shutil.rmtree(staging, ignore_errors=True)
        raise BadBackup(f"the archive holds data this backend cannot read: "
                        f"{getattr(e, 'message', e)}; nothing was changed") from e
    return staging


def restore(path: str, data_path: str, config_path: Optional[str]) -> dict:
    """Replace the data (and the config) with the archive's, after checking all of it;
    what was there is kept beside, named `<folder>.before-restore-<date>`. Refused
    (FolderInUse) while a server holds the folder. Returns what was restored and kept."""
    checked = check(path)
    _make_folder(data_path)
    with FolderLock(data_path, "restore"):
        staging = _stage(data_path, checked)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        kept = f"{data_path}.before-restore-{stamp}"
        os.replace(data_path, kept)
        os.replace(staging, data_path)
    kept_config = None
    if checked["config"] is not None and config_path:
        if exists(config_path):
            kept_config = f"{config_path}.before-restore-{stamp}"
            shutil.copy2(config_path, kept_config)
        config_module.save_file(config_path, checked["config"])
    return {"counts": checked["manifest"]["counts"], "kept_data": kept,
            "kept_config": kept_config, "created_at": checked["manifest"]["created_at"]}


# automatic backups (the skill keeps them daily) -------------------------------------

ARCHIVE_PREFIX = "ovos-personal-backend-"


def default_folder(data_path: str) -> str:
    """Where automatic backups go unless the owner chose: beside the data folder (a
    backup inside it would be backed up and restored with it)."""
    return f"{data_path.rstrip(os.sep)}-backups"


def archives(folder: str) -> Dict[str, float]:
    """{path: mtime} of the backups in `folder`."""
    if not os.path.isdir(folder):
        return {}
    return {join(folder, name): os.path.getmtime(join(folder, name))
            for name in os.listdir(folder)
            if name.startswith(ARCHIVE_PREFIX) and name.endswith(".tar.gz")}


def latest(folder: str) -> Optional[float]:
    """When the newest backup in `folder` was made (epoch seconds), None if none."""
    return max(archives(folder).values(), default=None)


def keep_dated(store: Store, config_path: Optional[str], folder: str, keep_days: float) -> str:
    """Write a dated backup into `folder` (owner-only) and delete those older than
    `keep_days` (the newest one is always kept); its path."""
    _make_folder(folder)
    now = time.time()
    path = join(folder, default_name(now))
    if exists(path):  # two in the same second: the one there is as fresh
        return path
    write(store, config_path, path)
    for old, made in archives(folder).items():
        if old != path and now - made > keep_days * 86400:
            os.unlink(old)
    return path
