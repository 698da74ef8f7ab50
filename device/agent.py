"""The sync agent: keeps one device in step with one backend.

Down: the device record becomes the remote layer of the device's configuration
(`web_cache.json`, then `configuration.updated`), and skill settings changed on the
backend reach the skill (its settings.json, then `ovos.skills.settings_changed`, on
which ovos-workshop reloads it and calls the skill's `settings_change_callback`).
Up: the installed skills (`skillJson`), each skill's settings definition, and setting
values changed on the device.

Changes made on both sides while they could not talk are merged per key against the
values both sides last agreed on: a key changed on one side only takes that side's
value; a key changed on both takes the newer one, judged by the settings file's
modification time on the device and the record's `updated_at` on the backend. Nothing
changed on either side is dropped, and a skill's private `_` keys never leave the device.
"""
import hashlib
import json
import threading
import time
from typing import Callable, Dict, Iterable, Optional

from ovos_bus_client.message import Message
from ovos_utils.log import LOG

from . import remote_config, skills
from .state import StateFile
from .transports import SyncError, Transport

MISSING = object()
MAX_BACKOFF = 300.0


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def _shape(meta: dict) -> str:
    """A digest of a settings definition without its values: a definition generated
    from the current settings must not be sent again each time a value changes."""
    return _digest([[s.get("name"), [{k: v for k, v in f.items() if k != "value"}
                                     for f in s.get("fields") or [] if isinstance(f, dict)]]
                    for s in meta.get("sections") or [] if isinstance(s, dict)])


def merge(device: dict, backend: dict, base: dict, device_newer: bool) -> tuple:
    """(values for the device, values for the backend) after a three-way merge per key."""
    to_device, to_backend = {}, {}
    for key in set(device) | set(backend):
        mine, theirs, agreed = (side.get(key, MISSING) for side in (device, backend, base))
        if mine == theirs:
            continue
        if theirs is MISSING:  # the backend does not serve it (any more): send only news
            if mine != agreed:
                to_backend[key] = mine
        elif mine is MISSING or mine == agreed:
            to_device[key] = theirs
        elif theirs == agreed:
            to_backend[key] = mine
        elif device_newer:
            to_backend[key] = mine
        else:
            to_device[key] = theirs
    return to_device, to_backend


class SyncAgent:
    """One device, one backend, one thread. `sync_once` does a whole round; `start` runs
    rounds whenever the transport or `wake` says something changed, or every
    `poll_interval` seconds, backing off while the backend is unreachable."""

    def __init__(self, transport: Transport, bus, state: StateFile, uuid: str,
                 skip: Iterable[str] = (), poll_interval: float = 30.0,
                 find_skills: Callable[[], Dict[str, str]] = skills.installed,
                 on_error: Optional[Callable[[SyncError], None]] = None):
        self.on_error = on_error  # called in the agent's thread after a failed round
        self.transport, self.bus, self.state, self.uuid = transport, bus, state, uuid
        self.skip = set(skip)
        self.poll_interval = poll_interval
        self.find_skills = find_skills
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.failures = 0
        self.last_error = ""
        self.last_sync = 0.0

    # running -------------------------------------------------------------------------

    def start(self) -> "SyncAgent":
        self.transport.watch(self.wake)
        self._thread = threading.Thread(target=self._run, name="device-sync", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        self.transport.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=15)

    def wake(self, *_args) -> None:
        """Run a round now (the backend or a skill's settings changed)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.clear()
            self.run_round()
            delay = self.retry_delay() if self.failures else self.poll_interval
            self._wake.wait(delay)

    def retry_delay(self) -> float:
        return min(2.0 ** self.failures, MAX_BACKOFF)

    def run_round(self) -> bool:
        """One round, its failure logged and counted instead of raised; True if it synced."""
        try:
            self.sync_once()
        except SyncError as e:
            self.failures += 1
            self.last_error = str(e)
            LOG.warning(f"device sync failed ({e}); the device keeps its current settings; "
                        f"retrying in {self.retry_delay():.0f} s")
            if self.on_error is not None:
                self.on_error(e)
            return False
        except Exception as e:  # a bug must not kill the thread: the next round retries
            self.failures += 1
            self.last_error = str(e)
            LOG.exception(f"device sync failed: {e}")
            return False
        if self.failures:
            LOG.info("device sync works again")
        self.failures, self.last_error, self.last_sync = 0, "", time.time()
        return True

    # one round -----------------------------------------------------------------------

    def sync_once(self) -> None:
        self.sync_config()
        installed = {k: v for k, v in self.find_skills().items() if k not in self.skip}
        self.sync_manifest(installed)
        states = self.transport.skill_states()
        book = self.state.get("skills", {})
        for skill_id, folder in sorted(installed.items()):
            book[skill_id] = self.sync_skill(skill_id, folder, states.get(skill_id),
                                             book.get(skill_id, {}))
        for gone in set(book) - set(installed):
            book.pop(gone)
        if book != self.state.get("skills", {}):
            self.state.set("skills", book)

    def sync_config(self) -> None:
        """The device record, as the remote layer of the device's configuration."""
        setting = self.transport.device_settings()
        if remote_config.write(remote_config.translate(setting)):
            LOG.info("device configuration changed on the backend; services reload it")
            self.bus.emit(Message("configuration.updated"))

    def gid(self, skill_id: str) -> str:
        return f"@{self.uuid}|{skill_id}"

    def sync_manifest(self, installed: Dict[str, str]) -> None:
        names = sorted(installed)
        if names == self.state.get("manifest"):
            return
        self.transport.upload_manifest({"blacklist": [], "skills": [
            {"name": name, "skill_gid": self.gid(name), "origin": "non-msm", "beta": True,
             "status": "active", "installed": 0, "updated": 0, "installation": "installed"}
            for name in names]})
        self.state.set("manifest", names)
        LOG.info(f"installed skills sent to the backend ({len(names)})")

    def sync_skill(self, skill_id: str, folder: str, remote: Optional[dict], book: dict) -> dict:
        """Sync one skill's settings; returns its new bookkeeping: `base` (the values both
        sides agree on) and `meta` (the shape of the definition sent)."""
        values, mtime = skills.read_settings(skill_id)
        if values is None:  # no settings yet, or being written now: next round
            return book
        gid = self.gid(skill_id)
        meta = skills.settings_meta(folder, values)
        meta_digest = _shape(meta)
        if remote is None or meta_digest != book.get("meta"):
            self.transport.upload_meta({"skill_gid": gid, **meta})
        if remote is None:
            to_device, to_backend = {}, dict(values)
        else:
            to_device, to_backend = merge(values, remote.get("settings") or {},
                                          book.get("base", {}),
                                          mtime > (remote.get("updated_at") or 0))
        if to_backend:
            self.transport.push_values(skill_id, to_backend, gid)
            LOG.info(f"{skill_id}: sent {sorted(to_backend)} to the backend")
        if to_device:
            # one writer, atomic: the file, then the notice ovos-core itself sends when a
            # settings file changes; ovos-workshop reloads the file and calls the skill's
            # settings_change_callback. (`mycroft.skills.settings.changed` would make the
            # skill rewrite the file in place and start a file watcher that reloads during
            # such writes: the race that empties a skill's settings.)
            if not skills.write_settings(skill_id, to_device):
                return {"base": book.get("base", {}), "meta": meta_digest}  # next round
            self.bus.emit(Message("ovos.skills.settings_changed", {"skill_id": skill_id}))
            LOG.info(f"{skill_id}: applied {sorted(to_device)} from the backend")
        return {"base": {**values, **to_device}, "meta": meta_digest}
