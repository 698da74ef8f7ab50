"""Moving in: bring an installation of the old community backend (`ovos-local-backend`
0.1.x with json_database files, or a 0.2.0 alpha with SQLite) into this one.

Formats: ../shared/legacy-backend-formats.md (checked against the real old servers).
Three steps, so that nothing is half-imported:

1. `find_sources` looks where the old versions kept their files (under a home folder)
   and in the folders or files the owner names (docker volumes, copies taken out of a
   container);
2. `read_sources` parses and checks every file into a `Plan`; a file that does not parse
   or has an unknown shape raises `LegacyFormatError` naming it, before anything is
   written;
3. `apply` writes what the store does not hold yet (a second import adds nothing) and
   returns the `Report`; with `dry_run` it only counts.

Devices keep their token as it is (stored hashed, like every token here): the
`identity2.json` each device holds goes on working, and mycroft-core's refresh through
`/auth/token` with it rotates it into a new pair, as after any pairing here.
The old files are only ever opened for reading (SQLite read-only).
"""
import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from os.path import basename, expanduser, isdir, isfile, join
from typing import Dict, Iterable, List, Optional, Tuple

from . import config as config_module
from . import datasets, devices, metrics, skill_settings
from .errors import BackendError, BadRequest
from .pairing import hash_token
from .services import oauth
from .store import SAFE_KEY, Store

# 0.1.x: json_database files, by the name each has in its folder
JSON_FILES = {
    "ovos_backend.json": "config",
    "ovos_devices.json": "devices",
    "ovos_shared_skill_settings.json": "shared_skills",
    "ovos_skill_settings.json": "device_skills",
    "ovos_oauth_apps.json": "oauth_apps",
    "ovos_oauth.json": "oauth_tokens",
    "ovos_metrics.jsondb": "metrics",
    "ovos_wakewords.jsondb": "wakewords",
    "ovos_utterances.jsondb": "utterances",
}
# where each version kept them, relative to the home folder (XDG defaults)
HOME_PLACES = (".config/json_database", ".cache/json_database", ".local/share/json_database")
SQLITE_IN_HOME = ".local/share/ovos_backend.db"  # 0.2.0a11-a23
CONFIG_02_IN_HOME = ".config/ovos_backend/ovos_backend.conf"  # 0.2.0a14-a23
# recordings of 0.1.x, under the config's data_path (default: the home folder)
RECORDING_KINDS = {"wakewords": datasets.WAKEWORDS, "utterances": datasets.UTTERANCES}
# the host of the public speech servers the old backend sent audio to by default
PUBLIC_STT = "stt.openvoiceos."
# the old device record's preferences, as this backend names them
DEVICE_FIELDS_01 = {"name": "name", "device_location": "device_location", "email": "email",
                    "opt_in": "opt_in", "isolated_skills": "isolated_skills", "lang": "lang",
                    "date_format": "date_format", "system_unit": "system_unit",
                    "time_format": "time_format"}
DEVICE_FIELDS_02 = {"name": "name", "placement": "device_location", "email": "email",
                    "opt_in": "opt_in", "isolated_skills": "isolated_skills", "lang": "lang",
                    "date_fmt": "date_format", "system_unit": "system_unit",
                    "time_fmt": "time_format"}
# old config keys without a counterpart here, and why (0.1.x top level, 0.2.x nested)
_PORT = "the port is this server's own setting"
_WW = "no counterpart in this backend's config (devices keep their own wake word)"
_VOICE = "no counterpart in this backend's config (devices keep their own voice)"
IGNORED_CONFIG = {
    "backend_port": _PORT, "server.port": _PORT,
    "data_path": "recordings are copied into this backend's data folder",
    "skip_auth": "this backend always checks device tokens",
    "server.skip_auth": "this backend always checks device tokens",
    "geolocate": "this backend never sends a device's address to an IP geolocation service",
    "server.geolocate": "this backend never sends a device's address to an IP geolocation service",
    "override_location": "no counterpart in this backend's config",
    "server.override_location": "no counterpart in this backend's config",
    "selene": "this backend does not proxy Selene",
    "default_ww": _WW, "ww_configs": _WW, "default_tts": _VOICE, "tts_configs": _VOICE,
    "default_values": "no counterpart in this backend's config (devices keep their choices)",
    "stt_servers": "no counterpart in this backend's config (speech runs here)",
    "database": "the old database is what is being imported",
    "server.database": "the old database is what is being imported",
}


class LegacyFormatError(ValueError):
    """An old file that does not parse or has a shape this import does not know; the
    message names the file. Nothing is imported."""


class NothingFound(LookupError):
    """No old installation where the import looked."""


@dataclass
class Sources:
    """The old files found: json_database files by kind, SQLite databases, config files,
    and the folders recordings may be found in."""

    json_files: Dict[str, str] = field(default_factory=dict)
    databases: List[str] = field(default_factory=list)
    configs: List[str] = field(default_factory=list)
    recording_roots: List[str] = field(default_factory=list)

    def empty(self) -> bool:
        return not (set(self.json_files) - {"config"}) and not self.databases

    def files(self) -> List[str]:
        return sorted(set(self.json_files.values()) | set(self.databases) | set(self.configs))


@dataclass
class Plan:
    """Everything read from the old installation, checked, in this backend's shapes."""

    versions: List[str] = field(default_factory=list)
    devices: Dict[str, dict] = field(default_factory=dict)  # uuid -> record (token hashed)
    shared_skills: Dict[str, dict] = field(default_factory=dict)  # skill id -> record
    gids: Dict[str, str] = field(default_factory=dict)  # "uuid|skill id" -> the gid devices sent
    metrics: List[dict] = field(default_factory=list)
    recordings: List[Tuple[str, dict, bytes]] = field(default_factory=list)  # kind, record, audio
    oauth_apps: Dict[str, dict] = field(default_factory=dict)
    oauth_tokens: Dict[str, dict] = field(default_factory=dict)
    config: Dict[str, object] = field(default_factory=dict)  # dotted key -> value
    skipped: List[str] = field(default_factory=list)


@dataclass
class Report:
    """What an import brought (or would bring: `dry_run`) and what it left, and why."""

    dry_run: bool
    sources: List[str]
    versions: List[str]
    imported: Dict[str, int] = field(default_factory=dict)
    already_here: Dict[str, int] = field(default_factory=dict)
    skipped: List[str] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> List[str]:
        verb = "would import" if self.dry_run else "imported"
        out = [f"old backend {', '.join(self.versions) or '?'} found in:"]
        out += [f"  {path}" for path in self.sources]
        out.append(f"{verb}: " + (", ".join(f"{n} {kind}" for kind, n in self.imported.items() if n)
                                  or "nothing new"))
        here = ", ".join(f"{n} {kind}" for kind, n in self.already_here.items() if n)
        if here:
            out.append(f"already here (left as they are): {here}")
        out += [f"skipped: {reason}" for reason in self.skipped]
        return out


# 1. finding ---------------------------------------------------------------------------

def find_sources(home: Optional[str] = None, paths: Iterable[str] = ()) -> Sources:
    """The old installation's files under `home` (default: this user's home, following
    XDG_* as the old server did) and in `paths` (folders or files named by the owner)."""
    sources = Sources()
    if home is None:
        bases = {"config": config_module.xdg_config_home(),
                 "data": config_module.xdg_data_home(),
                 "cache": os.environ.get("XDG_CACHE_HOME") or expanduser("~/.cache")}
        home = expanduser("~")
    else:
        bases = {"config": join(home, ".config"), "data": join(home, ".local", "share"),
                 "cache": join(home, ".cache")}
    for base in bases.values():
        _add_folder(sources, join(base, "json_database"))
    _add_file(sources, join(bases["data"], "ovos_backend.db"))
    _add_file(sources, join(bases["config"], "ovos_backend", "ovos_backend.conf"))
    sources.recording_roots.append(home)
    for path in paths:
        path = expanduser(path)
        if isdir(path):
            _add_folder(sources, path)
            sources.recording_roots.append(path)
        elif isfile(path):
            _add_file(sources, path)
        else:
            raise NothingFound(f"{path}: no such file or folder")
    return sources


def _add_folder(sources: Sources, folder: str) -> None:
    if not isdir(folder):
        return
    for name in sorted(os.listdir(folder)):
        path = join(folder, name)
        if isfile(path) and (name in JSON_FILES or name.endswith(".db") or name.endswith(".conf")):
            _add_file(sources, path)


def _add_file(sources: Sources, path: str) -> None:
    if not isfile(path):
        return
    name = basename(path)
    if name.endswith(".db"):
        sources.databases.append(path)
    elif name.endswith(".conf"):
        sources.configs.append(path)
    elif name in JSON_FILES:
        kind = JSON_FILES[name]
        if kind == "config":
            sources.configs.append(path)
        sources.json_files[kind] = path


# 2. reading ---------------------------------------------------------------------------

def read_sources(sources: Sources, config: dict) -> Plan:
    """Parse and check every old file into a Plan; LegacyFormatError names a bad one.
    `config` (this backend's, validated) gives the defaults of new records."""
    plan = Plan()
    files = sources.json_files
    if set(files) - {"config"}:
        plan.versions.append("0.1.x (json_database files)")
        _read_01(plan, sources, config)
    for database in sources.databases:
        plan.versions.append(f"0.2.x (SQLite {basename(database)})")
        _read_02(plan, database, config)
    for path in sources.configs:
        _read_config(plan, path)
    return plan


def _load_json(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError) as e:
        raise LegacyFormatError(f"{path}: not readable JSON ({e}); nothing was imported") from e
    if not isinstance(data, dict):
        raise LegacyFormatError(f"{path}: expected a JSON object; nothing was imported")
    return data


def _shape_error(path: str, what: str) -> LegacyFormatError:
    return LegacyFormatError(f"{path}: {what} does not have the shape of the old backend's; "
                             "nothing was imported")


def _read_01(plan: Plan, sources: Sources, config: dict) -> None:
    files = sources.json_files
    if "devices" in files:
        for uuid, old in _load_json(files["devices"]).items():
            if not isinstance(old, dict) or not isinstance(old.get("token"), str):
                raise _shape_error(files["devices"], f"device {uuid[:64]!r}")
            plan.devices[uuid] = _device(files["devices"], config, uuid, old["token"],
                                         _fields(old, DEVICE_FIELDS_01), old.get("location"),
                                         (old.get("default_ww"), old.get("default_ww_cfg")),
                                         (old.get("default_tts"), old.get("default_tts_cfg")))
    if "shared_skills" in files:
        for skill_id, old in _load_json(files["shared_skills"]).items():
            plan.shared_skills[skill_id] = _skill_01(plan, files["shared_skills"], "", skill_id, old)
    if "device_skills" in files:
        for uuid, skills in _load_json(files["device_skills"]).items():
            if not isinstance(skills, dict):
                raise _shape_error(files["device_skills"], f"the skills of {uuid[:64]!r}")
            own = {skill_id: _skill_01(plan, files["device_skills"], uuid, skill_id, old)
                   for skill_id, old in skills.items()}
            _give_own_skills(plan, files["device_skills"], uuid, own)
    _share_skills(plan)
    if "oauth_apps" in files:
        for app_id, app in _load_json(files["oauth_apps"]).items():
            plan.oauth_apps[app_id] = _oauth_app(files["oauth_apps"], app_id, app)
    if "oauth_tokens" in files:
        for app_id, token in _load_json(files["oauth_tokens"]).items():
            # 0.1.x kept one token per app for the whole household: the shared token id
            plan.oauth_tokens[app_id] = _oauth_token(files["oauth_tokens"], app_id, token)
    if "metrics" in files:
        mtime = os.stat(files["metrics"]).st_mtime
        for row in _jsondb_rows(files["metrics"], "ovos_metrics"):
            meta = row.get("meta")
            if not isinstance(meta, dict) or not isinstance(row.get("metric_type"), str):
                raise _shape_error(files["metrics"], f"metric {row.get('metric_id')!r}")
            started = meta.get("start_time")
            when = started if isinstance(started, (int, float)) and not isinstance(started, bool) \
                else mtime
            plan.metrics.append(_metric(row.get("uuid"), row["metric_type"], meta, when))
    roots = _recording_roots(plan, sources)
    for kind in RECORDING_KINDS:
        if kind in files:
            _read_recordings_01(plan, files[kind], kind, roots)


def _fields(old: dict, names: Dict[str, str]) -> dict:
    """The old record's preferences under this backend's names (absent ones left out)."""
    return {new: old[name] for name, new in names.items() if old.get(name) is not None}


def _device(path: str, config: dict, uuid: str, token: str, fields: dict, location,
            wake_word: tuple, voice: tuple) -> dict:
    """This backend's record of an old device, its token kept (hashed): checked as the
    owner's own changes are, so a value the old backend let in that this one refuses is
    named here, not served later."""
    if not isinstance(token, str) or not token:
        raise _shape_error(path, f"the token of device {uuid[:64]!r}")
    fields = dict(fields)
    fields["email"] = fields.get("email") or ""
    if location:
        fields["location"] = location
    name, cfg = wake_word
    if isinstance(name, str) and name:
        fields["wake_word"] = name
        if isinstance(cfg, dict):
            fields["ww_config"] = cfg
    module, cfg = voice
    if isinstance(module, str) and module:
        fields["tts_module"] = module
        if isinstance(cfg, dict):
            fields["tts_config"] = {k: v for k, v in cfg.items() if k != "module"}
    try:
        if not SAFE_KEY.match(uuid):
            raise BadRequest("the uuid holds characters a device id cannot have")
        record = devices.new_device(config, uuid)
        record.update(devices.validate_changes(fields))
    except BackendError as e:
        raise LegacyFormatError(f"{path}: device {uuid[:64]!r}: {e.message}; nothing was imported") from e
    digest = hash_token(token)
    record["tokens"] = {"access": digest, "refresh": digest}
    record["paired_at"] = record["created_at"]
    return record


def _skill_01(plan: Plan, path: str, uuid: str, skill_id: str, old) -> dict:
    """A skill's settings from its serialized form (values inside the meta fields). The
    gid the device sent is kept: devices find their settings under it here."""
    if not isinstance(old, dict) or not isinstance(old.get("skillMetadata", {}), dict):
        raise _shape_error(path, f"skill {skill_id[:64]!r}")
    if isinstance(old.get("skill_gid"), str) and old["skill_gid"]:
        plan.gids[f"{uuid}|{skill_id}"] = old["skill_gid"]
    return _skill(path, skill_id, old.get("display_name"), old.get("skillMetadata") or {})


def _skill(path: str, skill_id: str, display_name, meta: dict, settings: Optional[dict] = None) -> dict:
    name = display_name if isinstance(display_name, str) else None
    try:
        return skill_settings.imported_record(skill_id, name, meta, settings)
    except BackendError as e:
        raise LegacyFormatError(f"{path}: skill {skill_id[:64]!r}: {e.message}; "
                                "nothing was imported") from e


def _give_own_skills(plan: Plan, path: str, uuid: str, own: Dict[str, dict]) -> None:
    device = plan.devices.get(uuid)
    if device is None:
        plan.skipped.append(f"{len(own)} skill settings of device {uuid}: no such device "
                            f"in the old database ({basename(path)})")
        return
    device["skills"].update(own)
    device["skill_gids"].update({skill_id: plan.gids.get(f"{uuid}|{skill_id}", f"@{uuid}|{skill_id}")
                                 for skill_id in own})


def _share_skills(plan: Plan) -> None:
    """The old backend sent every shared skill to every device without its own copies:
    here a device is sent the skills it knows, so each imported device knows them all."""
    for device in plan.devices.values():
        for skill_id in plan.shared_skills:
            device["skill_gids"].setdefault(skill_id, plan.gids.get(f"|{skill_id}", f"@|{skill_id}"))


def _oauth_app(path: str, app_id: str, app) -> dict:
    if not isinstance(app, dict):
        raise _shape_error(path, f"OAuth app {app_id[:64]!r}")
    # the old callback_endpoint points at the old server (and is garbled in 0.1.5): this
    # backend's own callback is used instead
    body = {k: app[k] for k in ("client_id", "client_secret", "auth_endpoint", "token_endpoint",
                                "refresh_endpoint", "scope", "shell_integration")
            if app.get(k) is not None}
    try:
        oauth.check_app_id(app_id)
        return oauth.checked_app(app_id, body)
    except BackendError as e:
        raise LegacyFormatError(f"{path}: OAuth app {app_id[:64]!r}: {e.message}; "
                                "nothing was imported") from e


def _oauth_token(path: str, token_id: str, token) -> dict:
    if not isinstance(token, dict) or not token:
        raise _shape_error(path, f"OAuth token {token_id[:64]!r}")
    try:
        oauth.check_token_id(token_id)
    except BackendError as e:
        raise LegacyFormatError(f"{path}: {e.message}; nothing was imported") from e
    return token


def _metric(uuid, metric_type: str, meta: dict, when: float) -> dict:
    """A metric with an id made from its content, so a second import finds it here."""
    uuid = uuid if isinstance(uuid, str) and uuid != "AnonDevice" else ""
    digest = _content_id("metric", uuid, metric_type, meta, when)
    return {"metric_id": digest, "metric_type": metric_type, "uuid": uuid,
            "timestamp": float(when), "meta": meta}


def _content_id(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _jsondb_rows(path: str, name: str) -> List[dict]:
    rows = _load_json(path).get(name)
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise _shape_error(path, f"the list {name!r}")
    return rows


def _recording_roots(plan: Plan, sources: Sources) -> List[str]:
    """Folders the recordings may be in: the old config's data_path, then the folders
    given (a docker volume mounted elsewhere), then the home folder."""
    roots = []
    config = sources.json_files.get("config")
    if config:
        data_path = _load_json(config).get("data_path")
        if isinstance(data_path, str) and data_path:
            roots.append(data_path)
    return roots + sources.recording_roots


def _find_audio(stored: str, kind: str, roots: List[str]) -> Optional[str]:
    """The audio file a row names: where it was stored, else by its name under one of the
    `roots` (in `<kind>/`, or directly)."""
    if os.path.isabs(stored) and isfile(stored):
        return stored
    name = basename(stored)
    for root in roots:
        for candidate in (join(root, kind, name), join(root, name)):
            if isfile(candidate):
                return candidate
    return None


def _read_recordings_01(plan: Plan, path: str, kind: str, roots: List[str]) -> None:
    for row in _jsondb_rows(path, f"ovos_{kind}"):
        stored = row.get("path")
        if not isinstance(stored, str) or not isinstance(row.get("transcription", ""), str):
            raise _shape_error(path, f"recording {row.get(kind[:-1] + '_id')!r}")
        found = _find_audio(stored, kind, roots)
        if found is None:
            plan.skipped.append(f"{kind[:-1]} recording {basename(stored)!r}: its audio file "
                                "is in none of the folders given (name the recordings folder "
                                "with --from)")
            continue
        with open(found, "rb") as f:
            audio = f.read()
        meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
        extra = {}
        if kind == "wakewords":
            extra = {"audio_tag": row.get("tag") or datasets.UNTAGGED,
                     "speaker_tag": row.get("speaker_type") or datasets.UNTAGGED}
        _add_recording(plan, path, RECORDING_KINDS[kind], row.get("uuid"), audio,
                       row.get("transcription") or "", meta, os.stat(found).st_mtime, extra)


def _add_recording(plan: Plan, path: str, kind: str, uuid, audio: bytes, transcription: str,
                   meta: dict, when: float, extra: dict) -> None:
    uuid = uuid if isinstance(uuid, str) and uuid != "AnonDevice" else ""
    try:
        record = datasets.new_record(kind, _content_id(kind, uuid, hashlib.sha256(audio).hexdigest()),
                                     uuid, audio, transcription, meta, when, **extra)
    except BackendError as e:
        plan.skipped.append(f"a {kind[:-1]} recording of {uuid or 'no device'} in "
                            f"{basename(path)}: {e.message}")
        return
    plan.recordings.append((kind, record, audio))


# 0.2.x: SQLite ----------------------------------------------------------------------

def _rows(path: str, db: sqlite3.Connection, table: str) -> List[sqlite3.Row]:
    try:
        return db.execute(f"SELECT * FROM {table}").fetchall()  # noqa: S608 (our own names)
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return []
        raise LegacyFormatError(f"{path}: table {table}: {e}; nothing was imported") from e


def _json_column(path: str, table: str, value):
    if value is None or isinstance(value, (dict, list)):
        return value
    try:
        return json.loads(value)
    except (TypeError, ValueError) as e:
        raise LegacyFormatError(f"{path}: table {table} holds a JSON column that is not JSON "
                                f"({e}); nothing was imported") from e


def _read_02(plan: Plan, path: str, config: dict) -> None:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        db.row_factory = sqlite3.Row
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as e:
        raise LegacyFormatError(f"{path}: not a readable SQLite database ({e}); "
                                "nothing was imported") from e
    try:
        _read_02_rows(plan, path, db, config)
    except (sqlite3.DatabaseError, KeyError, IndexError) as e:
        raise LegacyFormatError(f"{path}: {e!r} (not the old backend's schema); "
                                "nothing was imported") from e
    finally:
        db.close()


def _location_02(row: sqlite3.Row) -> Optional[dict]:
    if row["latitude"] is None or row["longitude"] is None or not row["tz_code"]:
        return None
    return {"city": {"name": row["city"] or "",
                     "state": {"name": row["state"] or "", "code": row["state_code"] or "",
                               "country": {"name": row["country"] or "",
                                           "code": row["country_code"] or ""}}},
            "coordinate": {"latitude": row["latitude"], "longitude": row["longitude"]},
            "timezone": {"code": row["tz_code"], "name": row["tz_name"] or row["tz_code"]}}


def _read_02_rows(plan: Plan, path: str, db: sqlite3.Connection, config: dict) -> None:
    voices = {r["voice_id"]: r for r in _rows(path, db, "voice_definition")}
    wake_words = {r["ww_id"]: r for r in _rows(path, db, "wake_word_definition")}
    for row in _rows(path, db, "device"):
        fields = {k: (bool(v) if k in ("opt_in", "isolated_skills") else v)
                  for k, v in _fields(dict(row), DEVICE_FIELDS_02).items()}
        ww, voice = wake_words.get(row["ww_id"]), voices.get(row["voice_id"])
        plan.devices[row["uuid"]] = _device(
            path, config, row["uuid"], row["token"], fields, _location_02(row),
            (ww["name"], _json_column(path, "wake_word_definition", ww["ww_config"])) if ww else (None, None),
            (voice["plugin"], _json_column(path, "voice_definition", voice["tts_config"]))
            if voice else (None, None))
    for row in _rows(path, db, "skill_settings"):
        skill_id = row["remote_id"].split("|", 1)[-1]
        record = _skill(path, skill_id, row["display_name"],
                        _json_column(path, "skill_settings", row["meta"]) or {},
                        _json_column(path, "skill_settings", row["settings"]) or {})
        owner = row["remote_id"].split("|", 1)[0].lstrip("@") if "|" in row["remote_id"] else ""
        if owner:
            _give_own_skills(plan, path, owner, {skill_id: record})
        else:
            plan.shared_skills[skill_id] = record
    _share_skills(plan)
    for row in _rows(path, db, "metric"):
        meta = _json_column(path, "metric", row["metadata_json"])
        plan.metrics.append(_metric(row["uuid"], row["metric_type"],
                                    meta if isinstance(meta, dict) else {}, row["timestamp"] or 0))
    for table, kind in (("wake_word_recording", datasets.WAKEWORDS),
                        ("utterance_recording", datasets.UTTERANCES)):
        for row in _rows(path, db, table):
            meta = _json_column(path, table, row["metadata_json"])
            extra = {}
            if kind == datasets.WAKEWORDS:
                extra = {"audio_tag": row["audio_tag"] or datasets.UNTAGGED,
                         "speaker_tag": row["speaker_tag"] or datasets.UNTAGGED}
            _add_recording(plan, path, kind, row["uuid"], bytes(row["sample"] or b""),
                           row["transcription"] or "", meta if isinstance(meta, dict) else {},
                           row["timestamp"] or 0, extra)
    for row in _rows(path, db, "o_auth_application"):
        app_id = row["token_id"].split("|")[-1]
        app = dict(row)
        app["shell_integration"] = bool(app.get("shell_integration", True))  # SQLite: 0 or 1
        plan.oauth_apps[app_id] = _oauth_app(path, app_id, app)
    for row in _rows(path, db, "o_auth_token"):
        uuid, _, app_id = row["token_id"].lstrip("@").rpartition("|")
        token_id = oauth.device_token_id(uuid, app_id) if uuid else app_id
        plan.oauth_tokens[token_id] = _oauth_token(path, token_id,
                                                   _json_column(path, "o_auth_token", row["data"]))


# the old config ---------------------------------------------------------------------

def _read_config(plan: Plan, path: str) -> None:
    """The old config keys that have a counterpart here, as this backend's dotted keys."""
    old = _load_json(path)
    keys = plan.config
    services = old.get("microservices") if isinstance(old.get("microservices"), dict) else {}
    for name in ("owm_key", "wolfram_key"):
        value = services.get(name) or old.get(name)
        if isinstance(value, str) and value:
            keys[f"microservices.{name}"] = value
    email = services.get("email") or old.get("email")
    if isinstance(email, dict):
        smtp = email.get("smtp") if isinstance(email.get("smtp"), dict) else email
        for name in ("username", "password", "host", "port"):
            if smtp.get(name):
                keys[f"microservices.email.smtp.{name}"] = smtp[name]
        if email.get("recipient"):
            keys["microservices.email.recipient"] = email["recipient"]
    location = old.get("default_location") or old.get("location")
    if isinstance(location, dict):
        keys["location"] = location
    for name in ("lang", "date_format", "system_unit", "time_format"):
        if old.get(name):
            keys[name] = old[name]
    listener = old.get("listener") if isinstance(old.get("listener"), dict) else old
    for name in ("record_utterances", "record_wakewords"):
        if name in listener:
            keys[f"listener.{name}"] = listener[name]
    server = old.get("server") if isinstance(old.get("server"), dict) else old
    if server.get("admin_key"):
        keys["server.admin_key"] = server["admin_key"]
    stt = old.get("stt")
    if isinstance(stt, dict) and isinstance(stt.get("module"), str):
        if _public_stt(stt):
            plan.skipped.append(f"config stt ({basename(path)}): the old default sends speech to a "
                                "public server; this backend keeps its own (local) speech setting")
        else:
            keys["stt.module"] = stt["module"]
            if isinstance(stt.get(stt["module"]), dict):
                keys[f"stt.{stt['module']}"] = stt[stt["module"]]
    for name, why in IGNORED_CONFIG.items():
        holder = old
        for part in name.split("."):
            holder = holder.get(part) if isinstance(holder, dict) else None
        if holder not in (None, "", [], {}):
            plan.skipped.append(f"config {name} ({basename(path)}): {why}")


def _public_stt(stt: dict) -> bool:
    """Whether an old `stt` block is the old default: OVOS's public speech servers."""
    block = stt.get(stt["module"]) if isinstance(stt.get(stt["module"]), dict) else {}
    url = str(block.get("url") or "")
    return stt["module"] == "ovos-stt-plugin-server" and (not url or PUBLIC_STT in url)


# 3. applying ------------------------------------------------------------------------

def apply(store: Store, plan: Plan, config_path: str, dry_run: bool = False,
          sources: Iterable[str] = ()) -> Report:
    """Write what the store does not hold yet; count what it already holds. With
    `dry_run` nothing is written. The config keys go into `config_path`, except those
    the owner set there (said in the report)."""
    report = Report(dry_run=dry_run, sources=list(sources), versions=plan.versions,
                    skipped=list(plan.skipped))
    new_devices = {uuid: device for uuid, device in plan.devices.items()
                   if store.devices.peek(uuid) is None}
    for uuid in sorted(set(plan.devices) - set(new_devices)):
        if store.devices.peek(uuid).get("tokens") != plan.devices[uuid]["tokens"]:
            report.skipped.append(f"device {uuid}: paired with this backend since (or changed "
                                  "here); kept as it is")
    new_skills = {k: v for k, v in plan.shared_skills.items() if store.shared_skills.peek(k) is None}
    known = {m["metric_id"] for m in store.metrics.read()}
    new_metrics = [m for m in _unique(plan.metrics, "metric_id") if m["metric_id"] not in known]
    new_recordings = [(kind, record, audio) for kind, record, audio in plan.recordings
                      if datasets.collection(store, kind).peek(record["recording_id"]) is None]
    new_apps = {k: v for k, v in plan.oauth_apps.items() if store.oauth_apps.peek(k) is None}
    new_tokens = {k: v for k, v in plan.oauth_tokens.items() if store.oauth_tokens.peek(k) is None}
    config_changes, refused = _config_changes(config_path, plan.config)
    report.skipped += refused
    report.imported = {"devices": len(new_devices), "shared skill settings": len(new_skills),
                       "device skill settings": sum(len(d["skills"]) for d in new_devices.values()),
                       "metrics": len(new_metrics), "recordings": len(new_recordings),
                       "OAuth apps": len(new_apps), "OAuth tokens": len(new_tokens),
                       "config keys": len(config_changes)}
    report.already_here = {"devices": len(plan.devices) - len(new_devices),
                           "shared skill settings": len(plan.shared_skills) - len(new_skills),
                           "metrics": len(plan.metrics) - len(new_metrics),
                           "recordings": len(plan.recordings) - len(new_recordings),
                           "OAuth apps": len(plan.oauth_apps) - len(new_apps),
                           "OAuth tokens": len(plan.oauth_tokens) - len(new_tokens)}
    if dry_run:
        return report
    # config first: a refused value stops the import before any record is written
    if config_changes:
        stored = config_module.load_file(config_path)
        for key, value in config_changes.items():
            stored = config_module.merge(stored, _nested(key, value))
        config_module.save_file(config_path, stored)
    for kind, record, audio in new_recordings:
        datasets.restore(store, kind, record, audio)
    metrics.restore(store, new_metrics)
    for app_id, app in new_apps.items():
        store.oauth_apps.put(app_id, app)
    for token_id, token in new_tokens.items():
        store.oauth_tokens.put(token_id, token)
    for skill_id, record in new_skills.items():
        store.shared_skills.put(skill_id, record)
    # devices last: a device is usable once everything it reads is here
    for uuid, device in new_devices.items():
        store.devices.put(uuid, device)
    return report


def _unique(records: List[dict], key: str) -> List[dict]:
    seen, out = set(), []
    for record in records:
        if record[key] not in seen:
            seen.add(record[key])
            out.append(record)
    return out


def _path(dotted: str) -> List[str]:
    """The parts of a dotted config key; `stt.<plugin>` is two (plugin names hold dots)."""
    return ["stt", dotted[4:]] if dotted.startswith("stt.") else dotted.split(".")


def _nested(dotted: str, value) -> dict:
    nested = value
    for part in reversed(_path(dotted)):
        nested = {part: nested}
    return nested


def _config_changes(config_path: str, keys: Dict[str, object]) -> Tuple[Dict[str, object], List[str]]:
    """(the keys to write, why others are not written): a key the owner set here already
    is kept, and a value this backend's config refuses is left out."""
    stored = config_module.load_file(config_path)
    changes, skipped = {}, []
    for key, value in keys.items():
        present = stored
        for part in _path(key):
            present = present.get(part) if isinstance(present, dict) else None
        if present not in (None, ""):
            if present != value:
                skipped.append(f"config {key}: the owner set it here already; kept")
            continue
        merged = config_module.merge(stored, _nested(key, value))
        try:
            config_module.validate(config_module.merge(config_module.DEFAULTS, merged))
        except config_module.ConfigError as e:
            skipped.append(f"config {key}: this backend refuses the old value ({e})")
            continue
        stored, changes[key] = merged, value
    return changes, skipped


def run(store: Store, config: dict, config_path: str, home: Optional[str] = None,
        paths: Iterable[str] = (), dry_run: bool = False) -> Report:
    """Find, read and apply (the CLI, the skill and the tests call this)."""
    sources = find_sources(home, paths)
    if sources.empty():
        raise NothingFound("no old ovos-local-backend installation found "
                           f"(looked under {home or expanduser('~')} and in {list(paths) or 'nothing else'})")
    started = time.monotonic()
    own = [path for path in sources.configs if _same_file(path, config_path)]
    sources.configs = [path for path in sources.configs if path not in own]
    plan = read_sources(sources, config)
    plan.skipped += [f"config {path}: it is this backend's own config file already" for path in own]
    report = apply(store, plan, config_path, dry_run, sources.files())
    report.seconds = time.monotonic() - started
    return report


def _same_file(path: str, other: str) -> bool:
    try:
        return os.path.samefile(path, other)
    except OSError:
        return False
