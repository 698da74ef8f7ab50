"""Device records: creation, preferences, location, and the shapes devices read.

The HTTP API, the admin API, the web page and the skill's voice intents all change
devices through these functions, so every door validates the same way.
"""
import re
import time
from typing import Dict, List, Optional, Tuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import quotas
from .errors import BadRequest, NotFound
from .store import Store

CHOICES = {
    "system_unit": ("metric", "imperial"),
    "date_format": ("DMY", "MDY"),
    "time_format": ("full", "half"),
}
LANG = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8}){0,3}\Z")  # \Z: "$" lets a final newline in
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\Z")
TEXT_LIMIT = 200
# devices make an authenticated request at least every minute or two while they run
# (settings, skill settings, the sync agent's polls): five quiet minutes mean offline
ONLINE_SECONDS = 300

# fields an owner may change, and how each is checked
TEXT_FIELDS = ("name", "device_location", "ww_id", "voice_id", "wake_word", "tts_module")
BOOL_FIELDS = ("opt_in", "isolated_skills")
DICT_FIELDS = ("ww_config", "tts_config")
# version fields devices report: stored name -> the spellings sent, the wire name first
VERSION_FIELDS = {"core_version": ("coreVersion", "core_version"),
                  "enclosure_version": ("enclosureVersion", "enclosure_version"),
                  "platform": ("platform",),
                  "platform_build": ("platform_build", "platformBuild")}


def new_device(config: dict, uuid: str) -> dict:
    """A fresh record with the backend's configured defaults."""
    return {
        "uuid": uuid,
        "name": f"Device-{uuid[:8]}",
        "device_location": "somewhere",
        "email": "",
        "opt_in": False,
        "isolated_skills": False,
        "lang": config["lang"],
        "system_unit": config["system_unit"],
        "date_format": config["date_format"],
        "time_format": config["time_format"],
        "location": normalise_location(config["location"]),
        "ww_id": "",
        "voice_id": "",
        "wake_word": "",
        "ww_config": {},
        "tts_module": "",
        "tts_config": {},
        "core_version": "unknown",
        "platform": "unknown",
        "platform_build": "",
        "enclosure_version": "",
        "skills_manifest": {},
        "skill_gids": {},
        "skills": {},
        "tokens": {},
        "created_at": time.time(),
    }


def get(store: Store, uuid: str) -> dict:
    device = store.devices.get(uuid)
    if device is None:
        raise NotFound(f"unknown device: {uuid[:64]}")
    return device


def peek(store: Store, uuid: str) -> dict:
    """The stored record itself, not a copy, for the routes devices poll: read it, never
    modify it (copying a whole record for every poll costs 5-10% of the throughput)."""
    device = store.devices.peek(uuid)
    if device is None:
        raise NotFound(f"unknown device: {uuid[:64]}")
    return device


def list_all(store: Store) -> List[dict]:
    return sorted(store.devices.all().values(), key=lambda d: d.get("created_at", 0))


def find_by_name(store: Store, name: str) -> List[dict]:
    """Devices whose name matches, ignoring case and spacing (for voice requests)."""
    wanted = _spoken(name)
    return [d for d in list_all(store) if _spoken(d.get("name", "")) == wanted]


def _spoken(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def presence_report(store: Store, now: Optional[float] = None) -> Tuple[List[dict], List[dict]]:
    """Paired devices that made a request in the last ONLINE_SECONDS, and the others,
    as admin rows (with `last_seen`), each oldest first."""
    now = time.time() if now is None else now
    online: List[dict] = []
    offline: List[dict] = []
    for device in list_all(store):
        if device.get("tokens"):
            row = admin_view(store, device)
            seen = row["last_seen"]
            (online if seen and now - seen < ONLINE_SECONDS else offline).append(row)
    return online, offline


def delete(store: Store, uuid: str) -> None:
    """Forget a device; its tokens go with it."""
    if not store.devices.delete(uuid):
        raise NotFound(f"unknown device: {uuid[:64]}")


def validate_changes(changes: dict) -> dict:
    """Check owner-supplied fields; unknown fields are refused so typos do not pass silently."""
    if not isinstance(changes, dict):
        raise BadRequest("expected a JSON object")
    clean = {}
    for key, value in changes.items():
        if key in TEXT_FIELDS:
            if not isinstance(value, str) or len(value) > TEXT_LIMIT:
                raise BadRequest(f"{key} must be a string of at most {TEXT_LIMIT} characters")
            clean[key] = value.strip()
        elif key in BOOL_FIELDS:
            if not isinstance(value, bool):
                raise BadRequest(f"{key} must be true or false")
            clean[key] = value
        elif key in DICT_FIELDS:
            if not isinstance(value, dict):
                raise BadRequest(f"{key} must be an object")
            clean[key] = value
        elif key in CHOICES:
            if value not in CHOICES[key]:
                raise BadRequest(f"{key} must be one of {list(CHOICES[key])}")
            clean[key] = value
        elif key == "lang":
            if not isinstance(value, str) or not LANG.match(value.lower()):
                raise BadRequest("lang must be a language tag such as en-us")
            clean[key] = value.lower()
        elif key == "email":
            if not isinstance(value, str) or (value and not EMAIL.match(value)):
                raise BadRequest("email must be an e-mail address")
            clean[key] = value
        elif key == "location":
            clean[key] = normalise_location(value)
        else:
            raise BadRequest(f"unknown device field: {str(key)[:64]}")
    if "name" in clean and not clean["name"]:
        raise BadRequest("name must not be empty")
    return clean


def _set_fields(store: Store, uuid: str, fields: dict) -> dict:
    """Set checked `fields` on an existing device, atomically with respect to other writers."""
    def apply(device: Optional[dict]) -> dict:
        if device is None:
            raise NotFound(f"unknown device: {uuid[:64]}")
        device.update(fields)
        return device

    return store.devices.update(uuid, apply)


def update(store: Store, uuid: str, changes: dict) -> dict:
    """Apply validated owner changes (info, preferences, location) to a device."""
    return _set_fields(store, uuid, validate_changes(changes))


def set_location(store: Store, uuid: str, location: dict) -> dict:
    return update(store, uuid, {"location": location})


def version_report(report) -> Dict[str, str]:
    """{stored field: text} of the versions a device reports (activation, PATCH /device),
    whichever spelling each has: ovos-backend-client and mycroft-core send camelCase but
    `platform_build`, Selene's own records are snake_case, and devices mix both."""
    if not isinstance(report, dict):
        raise BadRequest("expected a JSON object")
    clean = {}
    for key, names in VERSION_FIELDS.items():
        wire = next((name for name in names if report.get(name) is not None), None)
        if wire is None:
            continue
        value = report[wire]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) \
                or len(str(value)) > TEXT_LIMIT:
            raise BadRequest(f"{wire} must be a string of at most {TEXT_LIMIT} characters")
        clean[key] = str(value)
    return clean


def wire_versions(versions: Dict[str, str]) -> Dict[str, str]:
    """Stored version fields under the names GET /device answers with (`coreVersion`...)."""
    return {VERSION_FIELDS[key][0]: value for key, value in versions.items()}


def record_version(store: Store, uuid: str, report) -> dict:
    """Keep what a device reports about itself (PATCH /device): core version, platform."""
    return _set_fields(store, uuid, version_report(report))


def record_manifest(store: Store, uuid: str, manifest: dict,
                    limits: Dict[str, int] = quotas.DEFAULT_QUOTAS) -> dict:
    """Keep the installed-skills manifest a device uploads (PUT /skillJson).

    Bounded by `limits` (quotas.manifest_skills, quotas.manifest_kb): the manifest is
    kept in the device's record, in memory, and every settings read walks it (one of
    200,000 entries made each read cost 0.3-0.55 s of CPU)."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("skills", []), list):
        raise BadRequest("expected {\"skills\": [...], \"blacklist\": [...]}")
    blacklist = manifest.get("blacklist") or []
    if not isinstance(blacklist, list):
        raise BadRequest("blacklist must be a list")
    quotas.check_count(len(manifest.get("skills", [])) + len(blacklist), limits,
                       "manifest_skills", "the skills manifest")
    quotas.check_kb(quotas.json_size(manifest), limits, "manifest_kb", "the skills manifest")
    skills = {}
    for entry in manifest.get("skills", []):
        key = (entry.get("skill_gid") or entry.get("name")) if isinstance(entry, dict) else None
        if not isinstance(key, str):  # a list as skill_gid was once used as a key: a 500
            raise BadRequest("every skill entry needs a name or a skill_gid (a string)")
        skills[key] = entry
    return _set_fields(store, uuid, {"skills_manifest": {
        "skills": skills, "blacklist": blacklist, "updated_at": time.time()}})


def skill_id_of(gid: str) -> str:
    """The skill id in a gid: `@<uuid>|<skill_id>`, `@|<skill_id>` or `<name>|<branch>`
    (api-contract §4.1); "" when it holds none."""
    parts = gid.split("|")
    return parts[1] if parts[0].startswith("@") and len(parts) > 1 else parts[0]


def installed_skills(device: dict) -> Optional[List[str]]:
    """The skill ids of the manifest the device uploaded, None while it has sent none.

    `record_manifest` keeps the skills as a dict keyed by gid (or name); a list of
    entries, the shape devices send, is read too (older or hand-edited records)."""
    manifest = device.get("skills_manifest")
    skills = manifest.get("skills") if isinstance(manifest, dict) else None
    if isinstance(skills, dict):
        gids = list(skills)
    elif isinstance(skills, list):
        gids = [e.get("skill_gid") or e.get("name") for e in skills if isinstance(e, dict)]
    else:
        return None
    return sorted({skill_id_of(gid) for gid in gids if isinstance(gid, str)} - {""})


# locations --------------------------------------------------------------------------

def timezone_offsets(code: str) -> tuple:
    """(standard offset, DST shift) in milliseconds, as Selene reports them."""
    import datetime
    zone = ZoneInfo(code)
    year = datetime.datetime.now().year
    offsets = [zone.utcoffset(datetime.datetime(year, month, 1)) for month in (1, 7)]
    standard = min(offsets)
    return int(standard.total_seconds() * 1000), int((max(offsets) - standard).total_seconds() * 1000)


def normalise_location(location) -> dict:
    """Validate a location object (mycroft.conf shape) and fill what can be derived."""
    if not isinstance(location, dict):
        raise BadRequest("location must be an object")
    coordinate = location.get("coordinate")
    if not isinstance(coordinate, dict):
        raise BadRequest("location.coordinate is required")
    try:
        lat = float(coordinate["latitude"])
        lon = float(coordinate["longitude"])
    except (KeyError, TypeError, ValueError, OverflowError):  # OverflowError: a 400-digit integer
        raise BadRequest("location.coordinate needs numeric latitude and longitude") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise BadRequest("location.coordinate is out of range")
    timezone = location.get("timezone") or {}
    code = timezone.get("code") if isinstance(timezone, dict) else None
    try:
        offset, dst = timezone_offsets(code)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise BadRequest("location.timezone.code must be an IANA time zone such as Europe/Lisbon") from None
    city = location.get("city") if isinstance(location.get("city"), dict) else {}
    state = city.get("state") if isinstance(city.get("state"), dict) else {}
    country = state.get("country") if isinstance(state.get("country"), dict) else {}

    def text(d: dict, key: str, default: str = "") -> str:
        value = d.get(key, default)
        return str(value)[:TEXT_LIMIT] if value is not None else default

    return {
        "city": {"code": text(city, "code", text(city, "name")), "name": text(city, "name"),
                 "state": {"code": text(state, "code"), "name": text(state, "name"),
                           "country": {"code": text(country, "code"), "name": text(country, "name")}}},
        "coordinate": {"latitude": lat, "longitude": lon},
        "timezone": {"code": code, "name": text(timezone, "name", code) or code,
                     "offset": offset, "dstOffset": dst},
    }


def describe_location(location: dict) -> str:
    """A place as a person says it: "Lisbon, Portugal"."""
    city = location.get("city", {})
    country = city.get("state", {}).get("country", {}).get("name", "")
    parts = [p for p in (city.get("name"), country) if p]
    return ", ".join(parts) or "{latitude}, {longitude}".format(**location["coordinate"])


# wire shapes ------------------------------------------------------------------------

def wire_info(device: dict) -> dict:
    """GET /device/{uuid}."""
    return {"uuid": device["uuid"], "name": device["name"],
            "description": device["device_location"],
            "coreVersion": device["core_version"], "enclosureVersion": device["enclosure_version"],
            "platform": device["platform"], "user": {"uuid": device["uuid"]}}


def wire_settings(device: dict) -> dict:
    """GET /device/{uuid}/setting: the remote mycroft.conf fragment (camelCase, §5)."""
    listener, hotwords, tts = {}, {}, {}
    if device.get("wake_word"):
        listener = {"wakeWord": device["wake_word"].replace(" ", "_")}
        if device.get("ww_config"):
            hotwords = {device["wake_word"]: device["ww_config"]}
    if device.get("tts_module"):
        tts = {"module": device["tts_module"], device["tts_module"]: device.get("tts_config") or {}}
    return {"uuid": device["uuid"], "dateFormat": device["date_format"],
            "timeFormat": device["time_format"], "systemUnit": device["system_unit"],
            "optIn": device["opt_in"], "lang": device["lang"], "location": device["location"],
            "listenerSetting": listener, "hotwordsSetting": hotwords, "ttsSettings": tts}


def admin_view(store: Store, device: dict) -> dict:
    """The row format the admin client and the old manager UI read (secrets left out),
    with when the device was last seen and last synced its skill settings (epoch
    seconds or None) and the skills its manifest lists."""
    view = {k: device.get(k) for k in (
        "uuid", "name", "device_location", "email", "isolated_skills", "opt_in", "date_format",
        "time_format", "system_unit", "lang", "location", "ww_id", "voice_id", "wake_word",
        "ww_config", "tts_module", "tts_config", "core_version", "platform", "platform_build",
        "enclosure_version", "created_at")}
    view["token"] = ""  # the manager UI pops this key; token hashes never leave the server
    view["paired"] = bool(device.get("tokens"))
    view.update(store.presence.get(device["uuid"]))
    view["skills_installed"] = installed_skills(device) or []
    return view
