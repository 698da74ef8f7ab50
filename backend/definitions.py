"""Wake-word and voice definitions: named plugin configs an owner can give devices.

The admin client keeps a catalogue of wake words (`ww_defs`) and TTS voices
(`voice_defs`, api-contract §7.2). A device's `ww_id` / `voice_id` picks one; the
definition's plugin config is then copied into the device record, so the device
receives it in its `/setting` (hotwordsSetting / ttsSettings) without a lookup per poll.

Ids are derived from the content, so posting the same definition twice gives one
entry; a PUT to an id that does not exist creates it under that very id (the old
backend recomputed or crashed there).
"""
import hashlib
import json
import re
from typing import List, NamedTuple, Optional

from .devices import LANG, TEXT_LIMIT
from .errors import BadRequest, NotFound
from .store import FileCollection, Store

ID_LIMIT = 200
SLUG = re.compile(r"[^A-Za-z0-9._-]+")


class Kind(NamedTuple):
    """What differs between the two catalogues."""
    label: str        # for messages
    id_key: str       # "ww_id"
    config_key: str   # "ww_config"
    collection: str   # attribute of Store
    extra: tuple      # fields only this kind has


WAKE_WORD = Kind("wake word", "ww_id", "ww_config", "ww_definitions", ())
VOICE = Kind("voice", "voice_id", "tts_config", "voice_definitions", ("offline", "gender"))


def _collection(store: Store, kind: Kind) -> FileCollection:
    return getattr(store, kind.collection)


def _text(body: dict, key: str, required: bool = False) -> str:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise BadRequest(f"{key} is required")
        return ""
    if not isinstance(value, str) or len(value) > TEXT_LIMIT:
        raise BadRequest(f"{key} must be a string of at most {TEXT_LIMIT} characters")
    return value.strip()


def _validate(kind: Kind, body: dict, default_lang: str) -> dict:
    """A complete record from a body (id not included); raises BadRequest."""
    plugin_config = body.get(kind.config_key)
    if plugin_config is None:
        plugin_config = {}
    if not isinstance(plugin_config, dict):
        raise BadRequest(f"{kind.config_key} must be an object")
    plugin_config = dict(plugin_config)
    # the client's documented examples put the plugin inside the config as "module"
    plugin = _text(body, "plugin") or _text(plugin_config, "module")
    plugin_config.pop("module", None)
    if not plugin:
        raise BadRequest(f"plugin is required (the {kind.label} plugin's package name)")
    lang = (_text(body, "lang") or default_lang).lower()
    if not LANG.match(lang):
        raise BadRequest("lang must be a language tag such as en-us")
    record = {"name": _text(body, "name", required=kind is WAKE_WORD) or plugin,
              "lang": lang, "plugin": plugin, kind.config_key: plugin_config}
    if kind is VOICE:
        offline = body.get("offline")
        if offline is not None and not isinstance(offline, bool):
            raise BadRequest("offline must be true or false")
        record["offline"] = bool(offline)
        record["gender"] = _text(body, "gender") or None
    return record


def _check_fields(kind: Kind, body) -> dict:
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    allowed = {kind.id_key, "name", "lang", "plugin", kind.config_key, *kind.extra}
    unknown = set(body) - allowed
    if unknown:
        raise BadRequest(f"unknown fields: {sorted(map(str, unknown))[:5]}")
    return body


def make_id(kind: Kind, record: dict) -> str:
    """`<plugin>_<name or lang>_<hash of config>`, URL-safe."""
    digest = hashlib.sha256(json.dumps(record[kind.config_key], sort_keys=True).encode()).hexdigest()
    label = record["name"] if kind is WAKE_WORD else record["lang"]
    return SLUG.sub("-", f"{record['plugin']}_{label}")[:ID_LIMIT - 13] + "_" + digest[:12]


def view(kind: Kind, key: str, record: dict) -> dict:
    return {kind.id_key: key, **record}


def list_all(store: Store, kind: Kind) -> List[dict]:
    return [view(kind, k, r) for k, r in sorted(_collection(store, kind).all().items())]


def get(store: Store, kind: Kind, key: str) -> dict:
    record = _collection(store, kind).get(key)
    if record is None:
        raise NotFound(f"unknown {kind.label} definition: {key[:64]}")
    return view(kind, key, record)


def create(store: Store, config: dict, kind: Kind, body) -> dict:
    """POST: store a definition under its derived id (the same content gives the same id)."""
    record = _validate(kind, _check_fields(kind, body), config["lang"])
    key = make_id(kind, record)
    _collection(store, kind).put(key, record)
    return view(kind, key, record)


def put(store: Store, config: dict, kind: Kind, key: str, body) -> dict:
    """PUT: update the given fields (None keeps a value), or create the entry under `key`."""
    body = _check_fields(kind, body)
    if not isinstance(key, str) or not key or len(key) > ID_LIMIT:
        raise BadRequest(f"{kind.id_key} must be a non-empty string")
    changes = {k: v for k, v in body.items() if v is not None and k != kind.id_key}

    def apply(current):
        return _validate(kind, {**(current or {}), **changes}, config["lang"])

    return view(kind, key, _collection(store, kind).update(key, apply))


def delete(store: Store, kind: Kind, key: str) -> None:
    if not _collection(store, kind).delete(key):
        raise NotFound(f"unknown {kind.label} definition: {key[:64]}")


def device_changes(store: Store, changes: dict) -> dict:
    """Device changes with `ww_id` / `voice_id` expanded into the plugin config they name.

    An empty or unknown id is kept as a plain reference: a wake word or voice set
    directly (admin prefs) stays, because the manager UI echoes `ww_id` back with every
    edit, and old setups name definitions this catalogue never held.
    """
    expanded = dict(changes)
    wake_word = _referenced(store, WAKE_WORD, changes)
    if wake_word:
        expanded.update(wake_word=wake_word["name"],
                        ww_config={"module": wake_word["plugin"], **wake_word["ww_config"]})
    voice = _referenced(store, VOICE, changes)
    if voice:
        expanded.update(tts_module=voice["plugin"], tts_config=voice["tts_config"])
    return expanded


def _referenced(store: Store, kind: Kind, changes: dict) -> Optional[dict]:
    key = changes.get(kind.id_key)
    if not key:
        return None
    if not isinstance(key, str):
        raise BadRequest(f"{kind.id_key} must be a string")
    return _collection(store, kind).get(key)
