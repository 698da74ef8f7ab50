"""The skills installed on this device: their ids, settings files and settings definitions.

Skills are found the way ovos-core finds plugin skills (entry points of the `opm.skill`
group, and the older `ovos.plugin.skill`), without importing them: the agent runs in a
thread of a device where importing a skill is ovos-core's job.
"""
import functools
import json
import os
import time
from importlib import metadata
from importlib.util import find_spec
from os.path import dirname, join
from typing import Dict, Optional, Tuple

import yaml
from ovos_config.locations import get_xdg_config_save_path
from ovos_utils.log import LOG

from ..backend.store import write_atomic

SKILL_GROUPS = ("opm.skill", "ovos.plugin.skill")
META_FILES = ("settingsmeta.json", "settingsmeta.yaml", "settingsmeta.yml")
READ_ATTEMPTS = 5


def installed() -> Dict[str, str]:
    """{skill_id: package folder} of every installed plugin skill."""
    skills = {}
    for group in SKILL_GROUPS:
        for entry in metadata.entry_points(group=group):
            if entry.name in skills:
                continue
            try:
                spec = find_spec(entry.module)  # a dotted module imports its parent only
                origin = spec.origin if spec else None
            except (ImportError, ValueError) as e:
                LOG.warning(f"skill {entry.name}: cannot locate {entry.module}: {e}")
                continue
            if origin:
                skills[entry.name] = dirname(origin)
    return skills


def settings_path(skill_id: str) -> str:
    """Where ovos-workshop keeps a skill's settings."""
    return join(get_xdg_config_save_path(), "skills", skill_id, "settings.json")


def _read_whole(path: str) -> Tuple[Optional[dict], float]:
    """(JSON object, modification time) of a settings file; (None, 0) while it is absent,
    not an object, or still half-written after a few tries (ovos-workshop rewrites it in
    place, so a reader can land between the truncation and the write)."""
    for attempt in range(READ_ATTEMPTS):
        try:
            mtime = os.stat(path).st_mtime
            with open(path) as f:
                data = json.load(f)
            return (data, mtime) if isinstance(data, dict) else (None, 0.0)
        except OSError:
            return None, 0.0
        except ValueError:
            if attempt < READ_ATTEMPTS - 1:
                time.sleep(0.05)
    return None, 0.0


def read_settings(skill_id: str) -> Tuple[Optional[dict], float]:
    """(settings without the skill's private `_` keys, modification time), or (None, 0)
    when there is nothing whole to read yet (see `_read_whole`)."""
    data, mtime = _read_whole(settings_path(skill_id))
    if data is None:
        return None, 0.0
    return {k: v for k, v in data.items() if not k.startswith("_")}, mtime


def write_settings(skill_id: str, changes: dict) -> bool:
    """Merge `changes` into a skill's settings.json, atomically, so a skill that is not
    running (or not listening) finds them when it loads. False, writing nothing, while
    the file cannot be read whole: replacing it then would drop the skill's other
    settings (a loaded skill still gets the changes from the bus message)."""
    path = settings_path(skill_id)
    current, _ = _read_whole(path)
    if current is None:
        if os.path.exists(path):
            return False
        current = {}
    current.update(changes)
    os.makedirs(dirname(path), exist_ok=True)
    write_atomic(path, json.dumps(current, indent=4).encode())
    return True


def _load_meta(folder: str) -> Optional[dict]:
    for name in META_FILES:
        path = join(folder, name)
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            continue
        return _parse_meta(path, mtime)
    return None


@functools.lru_cache(maxsize=256)
def _parse_meta(path: str, mtime: int) -> Optional[dict]:
    """A settingsmeta file, parsed once per version of it: the agent asks every round.
    Callers get the cached object and must not change it."""
    try:
        with open(path) as f:
            meta = json.load(f) if path.endswith(".json") else yaml.safe_load(f)
    except (OSError, ValueError, yaml.YAMLError) as e:
        LOG.warning(f"ignoring unreadable {path}: {e}")
        return None
    return meta if isinstance(meta, dict) else None


def _field(name: str, value) -> Optional[dict]:
    label = name.replace("-", " ").replace("_", " ").title()
    if isinstance(value, bool):
        return {"name": name, "type": "checkbox", "label": label, "value": str(value).lower()}
    if isinstance(value, (int, float)):
        return {"name": name, "type": "number", "label": label, "value": str(value)}
    if isinstance(value, str):
        return {"name": name, "type": "text", "label": label, "value": value}
    return None  # lists and objects have no form field


def settings_meta(folder: str, settings: dict) -> dict:
    """The skill's settingsmeta (its `skillMetadata` part), or, for a skill that ships
    none, one generated from its current settings as ovos-workshop's settings2meta does."""
    meta = _load_meta(folder)
    if meta is not None:
        return meta.get("skillMetadata", meta)
    fields = [f for f in (_field(k, v) for k, v in settings.items() if not k.startswith("_")) if f]
    return {"sections": [{"name": "Skill Settings", "fields": fields}]}
