"""Skill settings: values and their settingsmeta, shared between devices or per device.

A skill's settings live in one of two places (api-contract §4.6):
* shared, keyed by skill id, seen by every device that has the skill;
* a device's own copy, used when the device has `isolated_skills` or an owner gave it
  its own values. Reads use the device's copy if it exists, else the shared entry.
Values are stored natively; meta is stored without values. The v1 wire format puts
values back into the meta fields as strings, as Selene does.

What a device is sent follows Selene: once it has uploaded a manifest, only the skills
the manifest lists; of a skill whose settingsmeta defines fields, only the values of
those fields. Nothing is deleted for that: a value or a skill that comes back is served
again, and the shared values other devices use are untouched.
"""
import math
import time
from typing import Dict, Iterator, List, Mapping, Optional, Tuple

from . import devices, quotas
from .errors import BadRequest, NotFound
from .store import Store, clone

ID_LIMIT = 200


def parse_gid(gid) -> Tuple[str, str]:
    """(skill_id, gid) from a gid such as `@<uuid>|<skill_id>`, `@|<skill_id>` or `name|branch`."""
    if not isinstance(gid, str) or not gid.strip() or len(gid) > ID_LIMIT:
        raise BadRequest("skill_gid must be a non-empty string")
    skill_id = devices.skill_id_of(gid)
    if not skill_id:
        raise BadRequest(f"no skill id in skill_gid {gid!r}")
    return skill_id, gid


def _sections(meta) -> list:
    """The sections of a settingsmeta, whether wrapped in `skillMetadata` or not."""
    if not isinstance(meta, dict):
        raise BadRequest("settings metadata must be an object")
    if "skillMetadata" in meta:
        meta = meta["skillMetadata"] or {}
        if not isinstance(meta, dict):
            raise BadRequest("skillMetadata must be an object")
    sections = meta.get("sections", [])
    if not isinstance(sections, list) or not all(
            isinstance(s, dict) and isinstance(s.get("fields", []), list) and
            all(_field_ok(f) for f in s.get("fields", [])) for s in sections):
        raise BadRequest("skillMetadata.sections must be a list of {name, fields: [...]}, "
                         "each field's name and type a string")
    return sections


def _field_ok(field) -> bool:
    """A field is an object whose name and type are strings or absent: they are looked
    up in dicts (a list as a name once made every later read of the skill a 500)."""
    return isinstance(field, dict) and all(
        isinstance(field.get(key), (str, type(None))) for key in ("name", "type"))


def to_native(value, field_type: str):
    """A settingsmeta string value as the setting it stands for (the client's rules)."""
    if not isinstance(value, str):
        return value
    lowered = value.strip().lower()
    if field_type == "checkbox":
        return lowered in ("true", "1")
    if field_type == "number":
        if lowered in ("true", "false"):
            return int(lowered == "true")
        try:
            number = float(value)
        except ValueError:
            raise BadRequest(f"{value[:32]!r} is not a number") from None
        if not math.isfinite(number):  # "nan", "1e999": served back as bare NaN, not JSON
            raise BadRequest(f"{value[:32]!r} is not a finite number")
        return int(number) if number.is_integer() else number
    if lowered in ("none", "null"):
        return None
    if value == "[]":
        return []
    if value == "{}":
        return {}
    return value


def to_wire(value) -> str:
    """A setting as the string Selene puts into a settingsmeta field."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def split_meta(meta) -> Tuple[dict, dict]:
    """(meta without values, {name: native value}) from an uploaded settingsmeta. The
    meta is built anew around the upload's parts (the upload is left as it is: a deep
    copy of it cost a tenth of a settings upload's CPU); the store copies what it keeps."""
    values = {}

    def without_value(field: dict) -> dict:
        name, value = field.get("name"), field.get("value")
        if isinstance(name, str) and name and value is not None:
            values[name] = to_native(value, field.get("type", ""))
        return {key: item for key, item in field.items() if key != "value"}

    sections = [{**section, "fields": [without_value(f) for f in section["fields"]]}
                if "fields" in section else dict(section) for section in _sections(meta)]
    return {"sections": sections}, values


def _record(skill_id: str, display_name, meta: dict, settings: dict) -> dict:
    if display_name is not None and not isinstance(display_name, str):
        raise BadRequest("display_name must be a string")
    return {"skill_id": skill_id, "display_name": display_name or default_display_name(skill_id),
            "meta": meta, "settings": settings, "updated_at": time.time()}


def default_display_name(skill_id: str) -> str:
    name = skill_id.split(".")[0].replace("-", " ").replace("_", " ")
    return " ".join(w for w in name.split() if w.lower() not in ("skill", "ovos")).title() or skill_id


# device-facing operations ------------------------------------------------------------

def _own_copy(device: dict, skill_id: str) -> bool:
    return skill_id in device["skills"] or device.get("isolated_skills", False)


def effective(store: Store, device: dict, skill_id: str,
              shared: Optional[Mapping[str, dict]] = None) -> Optional[dict]:
    """What a device sees for a skill: its own copy, else the shared entry (the stored
    records themselves, not copies: read them, never modify them). `shared`: the shared
    entries (`peek_map`), when several skills are looked up at once."""
    shared = shared if shared is not None else store.shared_skills.peek_map()
    return device["skills"].get(skill_id) or shared.get(skill_id)


def known_skills(device: dict) -> List[str]:
    """The skills a device is sent settings of: those of its manifest once it uploaded
    one (a skill it removed is no longer served), else every skill it sent settings of
    or was given its own values for."""
    installed = devices.installed_skills(device)
    if installed is not None:
        return installed
    return sorted(set(device["skill_gids"]) | set(device["skills"]))


def field_names(meta) -> set:
    """The setting names a settingsmeta defines (labels have none)."""
    sections = meta.get("sections") if isinstance(meta, dict) else None
    return {field.get("name") for section in sections or () if isinstance(section, dict)
            for field in section.get("fields") or () if isinstance(field, dict)} - {None}


def served_values(record: dict) -> dict:
    """The values a device is sent: those its settingsmeta has fields for (a value whose
    field the skill dropped from its definition stays stored, unserved), or every value
    when the meta defines no field."""
    settings = record.get("settings", {})
    names = field_names(record.get("meta"))
    return {k: v for k, v in settings.items() if k in names} if names else settings


def _served(store: Store, device: dict) -> Iterator[Tuple[str, dict]]:
    """(skill id, effective record) of each skill with settings the device is sent."""
    shared = store.shared_skills.peek_map()  # checked for hand edits once, not per skill
    for skill_id in known_skills(device):
        record = effective(store, device, skill_id, shared)
        if record:
            yield skill_id, record


def _gid(device: dict, skill_id: str) -> str:
    return device["skill_gids"].get(skill_id) or f"@{device['uuid']}|{skill_id}"


def _save(store: Store, uuid: str, skill_id: str, gid: Optional[str],
          change, limits: Dict[str, int]) -> dict:
    """Apply `change(record or None) -> record` where this device's settings for the skill
    live, and remember the device has the skill (under `gid`, else the gid it had).
    A changed record must fit the device's quotas (`_check_quota`)."""
    stored = _stored_as_sent(store, uuid, skill_id, gid, change)
    if stored is not None:
        return stored
    result = {}

    def apply(device):
        if device is None:
            raise NotFound(f"unknown device: {uuid[:64]}")
        device["skill_gids"][skill_id] = gid or _gid(device, skill_id)

        def unless_same(record):
            # devices re-upload identical settings often: keep the record, so nothing is written
            new = change(record)
            same = record is not None and _same(new, record)
            if not same:
                _check_quota(store, device, skill_id, new, limits)
            return record if same else new

        if _own_copy(device, skill_id):
            current = device["skills"].get(skill_id) or store.shared_skills.get(skill_id)
            device["skills"][skill_id] = result["record"] = unless_same(clone(current))
        else:
            result["record"] = store.shared_skills.update(skill_id, unless_same)
        return device

    store.devices.update(uuid, apply)
    return result["record"]


def _stored_as_sent(store: Store, uuid: str, skill_id: str, gid: Optional[str],
                    change) -> Optional[dict]:
    """The stored record (read only) when `_save` would change nothing: the device has
    the skill under that gid already and `change` gives the values stored. Devices upload
    the same settings and meta again and again; this answers them without a lock or a
    copy. Nothing is written either way, so no writer can be overtaken."""
    device = store.devices.peek(uuid)
    known = device["skill_gids"].get(skill_id) if device is not None else None
    if known is None or (gid and gid != known):
        return None
    own = _own_copy(device, skill_id)
    record = device["skills"].get(skill_id) if own else store.shared_skills.peek(skill_id)
    if record is None:
        return None
    return record if _same(change(record), record) else None


def _same(new: dict, record: dict) -> bool:
    """Whether `new` holds what `record` does, whenever each was made (`updated_at` aside)."""
    return {**new, "updated_at": 0} == {**record, "updated_at": 0}


def _check_quota(store: Store, device: dict, skill_id: str, record: dict,
                 limits: Dict[str, int]) -> None:
    """TooLarge (413) when a device's new record for a skill is over quotas.skill_settings_kb,
    or all the settings it has would be over quotas.device_settings_kb: one device made the
    shared settings file 51 MiB, and every shared write then cost 332 ms. Measuring the
    device's other skills costs at most that quota's bytes, once per changed write."""
    size = quotas.json_size(record)
    quotas.check_kb(size, limits, "skill_settings_kb", f"the settings of {skill_id[:64]}")
    others = sum(quotas.json_size(device["skills"].get(other) or store.shared_skills.peek(other) or {})
                 for other in device["skill_gids"] if other != skill_id)
    quotas.check_kb(size + others, limits, "device_settings_kb", "this device's skill settings")


def upload(store: Store, uuid: str, body: dict,
           limits: Dict[str, int] = quotas.DEFAULT_QUOTAS) -> dict:
    """PUT /skill (v1): meta with current values; values merge into what is stored."""
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    skill_id, gid = parse_gid(body.get("skill_gid") or body.get("identifier"))
    meta, values = split_meta(body.get("skillMetadata") or {})

    def change(record):
        settings = dict((record or {}).get("settings", {}))
        settings.update(values)
        keep_meta = meta if meta["sections"] else (record or {}).get("meta", {"sections": []})
        name = body.get("display_name") or (record or {}).get("display_name")
        return _record(skill_id, name, keep_meta, settings)

    return _save(store, uuid, skill_id, gid, change, limits)


def upload_meta(store: Store, uuid: str, body: dict,
                limits: Dict[str, int] = quotas.DEFAULT_QUOTAS) -> dict:
    """PUT /settingsMeta: the definition only; stored values win over its defaults."""
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    skill_id, gid = parse_gid(body.get("skill_gid") or body.get("identifier"))
    meta, defaults = split_meta(body)

    def change(record):
        settings = dict(defaults)
        settings.update((record or {}).get("settings", {}))
        name = body.get("display_name") or (record or {}).get("display_name")
        return _record(skill_id, name, meta, settings)

    return _save(store, uuid, skill_id, gid, change, limits)


def wire_entry(record: dict, gid: str) -> dict:
    """One v1 entry: meta with every stored value put back as a string. Built anew
    around the stored record's parts (a deep copy of the meta at each poll cost ~3% of
    the CPU): the record itself is left as it is."""
    meta = record.get("meta") or {"sections": []}
    settings = record.get("settings", {})

    def with_value(field):
        name = field.get("name") if isinstance(field, dict) else None
        return {**field, "value": to_wire(settings[name])} if name in settings else field

    sections = [{**section, "fields": [with_value(f) for f in section.get("fields", [])]}
                if isinstance(section, dict) else section for section in meta.get("sections", [])]
    return {"uuid": record["skill_id"], "skill_gid": gid, "identifier": gid,
            "display_name": record.get("display_name", record["skill_id"]),
            "skillMetadata": {**meta, "sections": sections}}


def v1_list(store: Store, device: dict) -> List[dict]:
    """GET /skill: entries for the skills this device has."""
    return [wire_entry(record, _gid(device, skill_id)) for skill_id, record in _served(store, device)]


def v2_map(store: Store, device: dict) -> dict:
    """GET /skill/settings: values keyed by the full gid the device uploaded."""
    return {_gid(device, skill_id): served_values(record) for skill_id, record in _served(store, device)}


# two-way sync (our extension: GET and PATCH /skill/sync) -------------------------------

def _sync_entry(record: dict, gid: str) -> dict:
    return {"gid": gid, "settings": served_values(record), "updated_at": record.get("updated_at", 0.0)}


def sync_view(store: Store, device: dict) -> dict:
    """GET /skill/sync: `{"skills": {skill_id: {"gid", "settings", "updated_at"}}}`.

    The same skills and values as `v2_map`, keyed by bare skill id, with the time the
    values last changed, so a device can tell whose copy of a skill is newer. `device`
    is its record (`devices.peek`)."""
    return {"skills": {skill_id: _sync_entry(record, _gid(device, skill_id))
                       for skill_id, record in _served(store, device)}}


def push_values(store: Store, uuid: str, skill_id: str, values: dict,
                gid: Optional[str] = None, limits: Dict[str, int] = quotas.DEFAULT_QUOTAS) -> dict:
    """PATCH /skill/sync: merge `values` ({name: value}) into the skill's settings where
    this device's live (its own copy, else the shared record; created when absent).

    Only the given names change; `updated_at` moves only if a value did. Names starting
    with "_" are refused: a skill's private settings never leave the device. The device
    is known to have the skill from then on, under `gid` when given (else the gid it had,
    or `@<uuid>|<skill_id>`). Answers `{"skill_id", "gid", "settings", "updated_at"}`,
    settings as `sync_view` serves them (a name the skill's settingsmeta lacks is
    stored, not served).
    """
    skill_id = _check_skill_id(skill_id)
    if "|" in skill_id:
        raise BadRequest("skill_id is a bare skill id; a gid goes in gid")
    if gid is not None and parse_gid(gid)[0] != skill_id:
        raise BadRequest(f"gid {gid[:64]!r} names another skill than {skill_id[:64]!r}")
    values = _check_values(values)

    def change(record):
        record = record or {}
        return _record(skill_id, record.get("display_name"),
                       record.get("meta", {"sections": []}), {**record.get("settings", {}), **values})

    record = _save(store, uuid, skill_id, gid, change, limits)
    return {"skill_id": skill_id, **_sync_entry(record, _gid(devices.peek(store, uuid), skill_id))}


def _check_values(values) -> dict:
    if not isinstance(values, dict):
        raise BadRequest("settings must be an object of {name: value}")
    if not all(isinstance(k, str) and 0 < len(k) <= ID_LIMIT for k in values):
        raise BadRequest(f"setting names must be non-empty strings of at most {ID_LIMIT} characters")
    private = sorted(k for k in values if k.startswith("_"))
    if private:
        raise BadRequest(f"private settings (names starting with '_') stay on the device: {private[:5]}")
    return values


# admin operations (api-contract §7.2) ------------------------------------------------

def _check_skill_id(skill_id) -> str:
    if not isinstance(skill_id, str) or not skill_id or len(skill_id) > ID_LIMIT:
        raise BadRequest(f"skill_id must be a non-empty string of at most {ID_LIMIT} characters")
    return skill_id


def _check_admin_input(skill_id, settings, meta) -> Tuple[dict, dict]:
    _check_skill_id(skill_id)
    if settings is None:
        settings = {}
    if not isinstance(settings, dict):
        raise BadRequest("settings_json must be an object")
    meta_only, defaults = split_meta(meta or {})
    return meta_only, {**defaults, **settings}


def imported_record(skill_id, display_name, meta, settings=None) -> dict:
    """A skill's record from another backend's data (the import of an old backend),
    checked as the admin's input is; values in the meta fields are recovered."""
    meta_only, values = _check_admin_input(skill_id, settings, meta)
    return _record(skill_id, display_name, meta_only, values)


def admin_view(record: dict, gid: str) -> dict:
    view = wire_entry(record, gid)
    view.update(skill_id=record["skill_id"], settings=record.get("settings", {}),
                settings_json=record.get("settings", {}), meta=record.get("meta", {}))
    return view


def shared_list(store: Store) -> List[dict]:
    return [admin_view(r, k) for k, r in sorted(store.shared_skills.all().items())]


def shared_get(store: Store, skill_id: str) -> dict:
    record = store.shared_skills.get(skill_id)
    if record is None:
        raise NotFound(f"no shared settings for skill {skill_id[:64]}")
    return admin_view(record, skill_id)


def shared_put(store: Store, skill_id: str, display_name=None, settings=None, meta=None) -> dict:
    """Create or replace a skill's shared settings (upsert)."""
    current = store.shared_skills.get(skill_id) if isinstance(skill_id, str) else None
    meta_only, values = _check_admin_input(skill_id, settings, meta)
    if current and not meta:
        meta_only = current.get("meta", meta_only)
    name = display_name or (current or {}).get("display_name")
    record = _record(skill_id, name, meta_only, values)
    store.shared_skills.put(skill_id, record)
    return admin_view(record, skill_id)


def shared_delete(store: Store, skill_id: str) -> bool:
    if not store.shared_skills.delete(skill_id):
        raise NotFound(f"no shared settings for skill {skill_id[:64]}")
    return True


def device_list(store: Store, uuid: str) -> List[dict]:
    device = devices.get(store, uuid)
    return [admin_view(record, _gid(device, skill_id)) for skill_id, record in _served(store, device)]


def device_get(store: Store, uuid: str, skill_id: str) -> dict:
    device = devices.get(store, uuid)
    record = effective(store, device, skill_id)
    if record is None:
        raise NotFound(f"no settings for skill {skill_id[:64]} on device {uuid[:64]}")
    return admin_view(record, _gid(device, skill_id))


def device_put(store: Store, uuid: str, skill_id: str, display_name=None, settings=None,
               meta=None) -> dict:
    """Give a device its own values for a skill (they override the shared ones)."""
    meta_only, values = _check_admin_input(skill_id, settings, meta)
    result = {}

    def apply(device):
        if device is None:
            raise NotFound(f"unknown device: {uuid[:64]}")
        current = effective(store, device, skill_id) or {}
        keep_meta = meta_only if meta else current.get("meta", meta_only)
        name = display_name or current.get("display_name")
        device["skills"][skill_id] = result["record"] = _record(skill_id, name, keep_meta, values)
        result["gid"] = _gid(device, skill_id)
        return device

    store.devices.update(uuid, apply)
    return admin_view(result["record"], result["gid"])


def device_delete(store: Store, uuid: str, skill_id: str) -> bool:
    """Drop a device's own copy (it falls back to the shared settings)."""
    def apply(device):
        if device is None:
            raise NotFound(f"unknown device: {uuid[:64]}")
        if device["skills"].pop(skill_id, None) is None:
            raise NotFound(f"device {uuid[:64]} has no own settings for {skill_id[:64]}")
        return device

    store.devices.update(uuid, apply)
    return True
