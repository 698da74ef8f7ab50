"""The remote layer of the device's configuration: `web_cache.json`.

ovos-config >= 1 no longer downloads anything: it merges `web_cache.json` ("a local
file expected to be managed by an external service") right above the default config.
The agent is that service. It translates the backend's `/setting` record the way
mycroft-core and ovos-backend-client always have (`ttsSettings` -> `tts`,
`listenerSetting.wakeWord` -> `listener.wake_word`), drops the keys the system
protects, and rewrites the file atomically only when its content changes.
"""
import json
import os
import re
from os.path import join
from typing import List

from ovos_config.locations import get_xdg_config_save_path
from ovos_utils.log import LOG

from ..backend.store import write_atomic

# server-side bookkeeping that is not configuration (as the old clients skip it)
IGNORED = {"uuid", "@type", "active", "user", "device"}
CAMEL_BOUNDARY = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_key(key: str) -> str:
    """`listenerSetting` -> `listener`, `dateFormat` -> `date_format`, `hey mycroft` -> `hey_mycroft`."""
    key = re.sub(r"Setting(s)?", "", key)
    return CAMEL_BOUNDARY.sub(" ", key).replace(" ", "_").lower()


def translate(setting: dict) -> dict:
    """The mycroft.conf fragment a `/setting` record stands for."""
    config = {}
    for key, value in setting.items():
        if key in IGNORED:
            continue
        name = snake_key(key)
        if isinstance(value, dict):
            config[name] = translate(value)
        elif isinstance(value, list) and value and all(
                isinstance(v, dict) and "@type" in v for v in value):
            # Selene's list of {"@type": module, "active": bool, ...}: one section per module
            section = config.setdefault(name, {})
            for entry in value:
                if entry.get("active"):
                    section["module"] = entry["@type"]
                section[entry["@type"]] = translate(entry)
        else:
            config[name] = value
    return config


def web_cache_path() -> str:
    """Where ovos-config reads the remote layer (`MYCROFT_WEB_CACHE` wins, as in ovos-config)."""
    return os.environ.get("MYCROFT_WEB_CACHE") or join(get_xdg_config_save_path(), "web_cache.json")


def protected_keys() -> List[str]:
    """Dotted keys the system config forbids the remote layer to set."""
    from ovos_config.config import Configuration
    try:
        constraints = Configuration.get_system_constraints() or {}
    except Exception as e:  # a broken system config must not stop the sync
        LOG.warning(f"cannot read the system's protected keys: {e}")
        return []
    return list((constraints.get("protected_keys") or {}).get("remote") or [])


def _drop(config: dict, dotted: str) -> None:
    *path, leaf = dotted.split(".")
    node = config
    for part in path:
        node = node.get(part)
        if not isinstance(node, dict):
            return
    node.pop(leaf, None)


def write(config: dict) -> bool:
    """Store `config` as the remote layer, minus protected keys; True if the file changed."""
    config = json.loads(json.dumps(config))  # a copy the protected keys can be cut from
    for key in protected_keys():
        _drop(config, key)
    path = web_cache_path()
    try:
        with open(path) as f:
            if json.load(f) == config:
                return False
    except (OSError, ValueError):
        pass  # absent or unreadable: (re)write it
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomic(path, json.dumps(config, indent=2, sort_keys=True).encode())
    return True
