"""Changing the backend configuration while it runs (admin API and web page).

A change is a partial config. It is validated as a whole, written to the config file
the server was started from, and applied to the running server at once, except for
the keys the server only reads at start (listening address, URL prefix, body limit,
data folder, STT engine): those are saved and reported as needing a restart.
"""
import copy
import threading
from typing import List

from . import config as config_module
from .devices import normalise_location
from .errors import BadRequest, Conflict, StorageError

# keys read once at start; prefixes match their sub-keys
RESTART_KEYS = ("server.host", "server.port", "server.version", "server.max_body_mb",
                "data_path", "stt", "microservices.cache")

_lock = threading.Lock()


def _flatten(data: dict, prefix: str = "") -> dict:
    """{"a.b": leaf}; the location object counts as one value (it is written whole)."""
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and name != "location":
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _get(config: dict, dotted: str):
    value = config
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _nest(flat: dict) -> dict:
    nested: dict = {}
    for dotted, value in flat.items():
        parent = nested
        *path, leaf = dotted.split(".")
        for part in path:
            parent = parent.setdefault(part, {})
        parent[leaf] = value
    return nested


def shown(config: dict) -> dict:
    """The config as GET admin/config shows it: secrets masked, plus the old backend's
    keys the old manager UI reads (api-contract §7.4), with values that say what this
    server really does (they cannot be changed: see `LEGACY_KEYS` in config)."""
    view = config_module.masked(config)
    view["server"].update(skip_auth=False, geolocate=False, override_location=True)
    view["default_values"] = {"ww_id": "", "voice_id": "", "stt_id": ""}
    view["stt_servers"] = [f"{config_module.public_url(config)}/{config['server']['version']}/stt"]
    return view


# why each key of the old backend's config cannot be changed here (it is shown by `shown`)
LEGACY_REFUSALS = {
    "server.skip_auth": "this backend always checks device tokens (without that, anyone on "
                        "the network could act as any device)",
    "server.geolocate": "this backend never sends a device's address to an IP geolocation service",
    "server.override_location": "new devices always get the default location here (set location)",
    "server.database": "this backend keeps its data in files under data_path",
    "stt_servers": "speech-to-text runs in this backend (set stt.module)",
    "default_values": "new devices keep the wake word and voice they report; this backend has "
                      "no defaults for them",
}


def _legacy(dotted: str) -> str:
    """The old backend's key `dotted` falls under, or ""."""
    return next((k for k in config_module.LEGACY_KEYS
                 if dotted == k or dotted.startswith(k + ".")), "")


def _refuse_legacy_changes(config: dict, flat: dict) -> None:
    """An old key posted with the value GET shows is no change (the old manager posts the
    whole config back); another value is refused, naming the key: nothing here would
    store it, and a 200 would tell the owner it worked."""
    showing = _flatten(shown(config))
    for dotted, value in flat.items():
        key = _legacy(dotted)
        if key and showing.get(dotted, None) != value:
            raise BadRequest(f"{dotted} cannot be changed on this backend: {LEGACY_REFUSALS[key]}")


def _clean(config: dict, delta) -> dict:
    """The changes `delta` really makes, checked. The old manager UI posts the whole
    config back: a masked secret means "keep", and the old backend's keys (which
    `shown` adds) are dropped when unchanged, refused when changed."""
    if not isinstance(delta, dict):
        raise BadRequest('expected {"config": {...}} with a JSON object')
    if "location" in delta:  # checked first: a wrong shape is a bad location, not unknown keys
        delta = {**delta, "location": normalise_location(delta["location"])}
    unknown = config_module.unknown_keys(delta)
    if unknown:
        raise BadRequest(f"unknown config keys: {unknown[:5]}")
    flat = _flatten(delta)
    _refuse_legacy_changes(config, flat)
    flat = {k: v for k, v in flat.items() if not _legacy(k)}
    for secret in config_module.SECRETS:
        if flat.get(secret) == config_module.MASK:
            flat.pop(secret)
    if "server.admin_key" in flat and not flat["server.admin_key"]:
        raise BadRequest("server.admin_key cannot be cleared here (that would lock you out); "
                         "edit the config file to disable the admin API")
    return _nest({k: v for k, v in flat.items() if _get(config, k) != v})


def needs_restart(before: dict, after: dict) -> List[str]:
    """The start-only keys whose value differs."""
    return [key for key in RESTART_KEYS if _get(before, key) != _get(after, key)]


def update(config: dict, path: str, delta) -> dict:
    """Validate, save and apply a partial config; `config` (the running one) changes in place.

    Returns the masked running config, the keys that wait for a restart, and the file.
    """
    with _lock:
        changes = _clean(config, delta)
        try:
            saved = config_module.merge(config_module.load_file(path), changes)
        except config_module.ConfigError as e:
            raise Conflict(f"{e}; fix or remove the file by hand") from e
        try:
            config_module.validate(config_module.merge(config_module.DEFAULTS, saved))
            wanted = config_module.validate(config_module.merge(config, changes))
        except config_module.ConfigError as e:
            raise BadRequest(str(e)) from e
        if changes:
            try:
                config_module.save_file(path, saved)
            except OSError as e:
                raise StorageError(f"cannot write the config file: {e.strerror or e}") from e
        restart = needs_restart(config, wanted)
        _apply(config, wanted, restart)
    return {"config": config_module.masked(config), "restart_required": restart, "path": path,
            "changed": sorted(_flatten(changes))}


def _apply(config: dict, wanted: dict, keep: List[str]) -> None:
    """Swap in the new values one top-level key at a time (readers never see a half
    config), leaving the start-only keys as the server actually runs them."""
    wanted = copy.deepcopy(wanted)
    for dotted in keep:
        parent_new, parent_old = wanted, config
        *path, leaf = dotted.split(".")
        for part in path:
            parent_new, parent_old = parent_new[part], parent_old[part]
        parent_new[leaf] = copy.deepcopy(parent_old[leaf])
    for key, value in wanted.items():
        if config.get(key) != value:
            config[key] = value
