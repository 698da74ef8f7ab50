"""The configuration of the device the skill runs on: its mycroft.conf and its identity.

When the backend runs inside the device it serves, "pointing the device here" means
editing the user mycroft.conf (the file every OVOS service reads, through ovos-config)
and "pairing this device" means writing identity2.json where ovos-backend-client reads
it. The caller tells running services about a change (`configuration.updated` on the
bus); this module only reads and writes the files.
"""
import os
from os.path import dirname, isfile
from typing import Dict, Optional

from ovos_config.config import Configuration
from ovos_config.locations import DISTRIBUTION_CONFIG, SYSTEM_CONFIG, find_user_config, \
    get_xdg_config_locations
from ovos_config.models import LocalConf

from ..backend import pairing
from ..backend.config import device_snippet
from ..backend.store import CorruptFile, Document, Store
from . import identity as identity_file
from .identity import Identity

# the keys pointing the device at a backend changes; they are restored as they were
MANAGED_KEYS = ("server.url", "server.version", "server.backend_type", "server.disabled",
                "listener.wake_word_upload.url")


class DeviceConfigError(Exception):
    """The user mycroft.conf cannot be changed safely (e.g. it is not valid JSON)."""


# mycroft.conf ------------------------------------------------------------------------

def _user_config() -> LocalConf:
    """The user mycroft.conf, refusing a broken file: LocalConf would load it as empty
    and the next `store()` would silently wipe the user's settings."""
    path = find_user_config()
    if isfile(path):
        try:
            Document.read(path)
        except CorruptFile as e:
            raise DeviceConfigError(f"{e}; fix it by hand first") from e
    return LocalConf(path)


def _save(conf: LocalConf) -> None:
    try:
        os.makedirs(dirname(conf.path), exist_ok=True)
        conf.store()
    except OSError as e:
        raise DeviceConfigError(f"cannot write {conf.path}: {e.strerror or e}") from e


def _lookup(conf: dict, dotted: str) -> tuple:
    """(present, value) of a dotted key."""
    node = conf
    *path, leaf = dotted.split(".")
    for part in path:
        node = node.get(part)
        if not isinstance(node, dict):
            return False, None
    return (leaf in node), node.get(leaf)


def _assign(conf: dict, dotted: str, value) -> None:
    node = conf
    *path, leaf = dotted.split(".")
    for part in path:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[leaf] = value


def _remove(conf: dict, dotted: str) -> None:
    """Remove a dotted key, and the sections it leaves empty (so that restoring a file
    gives back exactly what it held)."""
    *path, leaf = dotted.split(".")
    nodes = [conf]
    for part in path:
        child = nodes[-1].get(part)
        if not isinstance(child, dict):
            return
        nodes.append(child)
    nodes[-1].pop(leaf, None)
    for depth in reversed(range(len(path))):
        if nodes[depth + 1]:
            break
        nodes[depth].pop(path[depth])


def _flatten(tree: dict, prefix: str = "") -> Dict[str, object]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def backend_values(url: str, version: str) -> Dict[str, object]:
    """What a device needs to use the backend at `url` (api-contract §9.3): the snippet
    the README and the dashboard give, and the backend switched on."""
    return {**_flatten(device_snippet(url, version)), "server.disabled": False}


def server_url() -> str:
    """The backend URL the device uses now: from the user's file, else from a system-wide
    mycroft.conf (an image may ship one pointing at its vendor's backend). Files are read
    afresh: a process's cached Configuration() can lag behind them."""
    user = find_user_config()
    shared = [p for p in get_xdg_config_locations() if p != user]
    for path in [user, *shared, SYSTEM_CONFIG, DISTRIBUTION_CONFIG]:
        conf = _user_config() if path == user else LocalConf(path)
        present, url = _lookup(conf, "server.url")
        if present:
            return url or ""
    return ""


def points_at(url: str, version: str) -> bool:
    """True if the user mycroft.conf already holds every value `point_at` would write."""
    return holds(backend_values(url, version))


def point_at(url: str, version: str) -> Dict[str, object]:
    """Point the device at the backend; returns the values it replaced (absent keys are
    left out) so that `restore` can put them back."""
    return apply(backend_values(url, version))


def restore(previous: Dict[str, object]) -> None:
    """Undo `point_at`: managed keys get their old value back, or go if they were absent."""
    put_back(previous, MANAGED_KEYS)


def apply(values: Dict[str, object]) -> Dict[str, object]:
    """Write dotted `values` into the user mycroft.conf; the values they replaced (absent
    keys left out), for `put_back`."""
    conf = _user_config()
    previous = {}
    for key, value in values.items():
        present, old = _lookup(conf, key)
        if present:
            previous[key] = old
        _assign(conf, key, value)
    _save(conf)
    return previous


def holds(values: Dict[str, object]) -> bool:
    """True if the user mycroft.conf holds every one of the dotted `values`."""
    conf = _user_config()
    return all(_lookup(conf, key) == (True, value) for key, value in values.items())


def put_back(previous: Dict[str, object], keys) -> None:
    """Undo `apply` for `keys`: each gets its old value back, or goes if it was absent."""
    conf = _user_config()
    for key in keys:
        if key in previous:
            _assign(conf, key, previous[key])
        else:
            _remove(conf, key)
    _save(conf)


# this device's speech through the backend: OVOS's stock plugins, pointed at its speech
# URL, and no fallback engine (a fallback would send the audio to a public server)
STT_PLUGIN, TTS_PLUGIN = "ovos-stt-plugin-server", "ovos-tts-plugin-server"
SPEECH_KEYS = ("stt.module", "stt.fallback_module", f"stt.{STT_PLUGIN}",
               "tts.module", "tts.fallback_module", f"tts.{TTS_PLUGIN}")


def speech_values(speech_url: str) -> Dict[str, object]:
    """The mycroft.conf values that send this device's speech to its speech URL."""
    return {"stt.module": STT_PLUGIN, "stt.fallback_module": "",
            f"stt.{STT_PLUGIN}": {"url": f"{speech_url}/stt"},
            "tts.module": TTS_PLUGIN, "tts.fallback_module": "",
            f"tts.{TTS_PLUGIN}": {"host": speech_url, "v2": True}}


def speech_url() -> str:
    """The speech URL the user mycroft.conf gives the TTS plugin ("" if none)."""
    present, block = _lookup(_user_config(), f"tts.{TTS_PLUGIN}")
    return str(block.get("host") or "") if present and isinstance(block, dict) else ""


def location() -> Optional[dict]:
    """The location the device's configuration holds, if any."""
    present, value = _lookup(_user_config(), "location")
    if not present:
        value = Configuration().get("location")
    return value if isinstance(value, dict) and value.get("coordinate") else None


def set_location(location: dict) -> None:
    """Write a location whole (city, coordinate and timezone together): services that
    read one part and not the others would otherwise disagree about where they are."""
    conf = _user_config()
    conf["location"] = {key: location[key] for key in ("city", "coordinate", "timezone")}
    _save(conf)


def clear_location() -> None:
    """Remove the location from the user mycroft.conf (if it holds one), so the one the
    backend sends through the remote layer applies."""
    conf = _user_config()
    if "location" in conf:
        conf.pop("location")
        _save(conf)


def set_opt_in(enabled: bool) -> None:
    """Let the device's listener share its recordings (it uploads only when `opt_in` is
    on and the wake-word upload is not disabled)."""
    conf = _user_config()
    conf["opt_in"] = enabled
    _assign(conf, "listener.wake_word_upload.disable", not enabled)
    _save(conf)


# identity2.json ----------------------------------------------------------------------

def identity() -> Identity:
    """The device identity on disk (re-read every time)."""
    return identity_file.load()


def save_identity(login: dict) -> None:
    """Write a login ({uuid, accessToken, refreshToken, expiration}) to identity2.json."""
    identity_file.save(login)


def this_device(store: Store, remembered: str = "") -> Optional[str]:
    """The uuid of the device the skill runs on, if the backend knows it: the identity's
    uuid, else the one the skill remembered when it paired the device."""
    for uuid in (identity().uuid, remembered):
        if uuid and store.devices.get(uuid) is not None:
            return uuid
    return None


def is_paired(store: Store) -> bool:
    """True if the device's identity holds a token this backend accepts."""
    current = identity()
    return bool(current.uuid) and pairing.authenticate(store, current.access) == current.uuid
