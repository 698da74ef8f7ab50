"""Backend configuration: embedded defaults, one optional JSON file, validation.

Key names and places follow the old backend's `ovos_backend.conf` wherever it had
the key, so an existing config file (and the old manager UI that edits it) keeps
working. Every key is optional.
"""
import copy
import ipaddress
import json
import os
import re
from os.path import expanduser, join
from typing import List, Optional

from ovos_utils.log import LOG

MIN_ADMIN_KEY_LENGTH = 16
MAX_SPEECH_THREADS = 5  # of the server's 8 worker threads, STT and TTS together (_validate_speech)

DEFAULT_LOCATION = {
    "city": {"code": "Lawrence", "name": "Lawrence",
             "state": {"code": "KS", "name": "Kansas",
                       "country": {"code": "US", "name": "United States"}}},
    "coordinate": {"latitude": 38.971669, "longitude": -95.23525},
    "timezone": {"code": "America/Chicago", "name": "America/Chicago",
                 "offset": -21600000, "dstOffset": 3600000},
}

DEFAULTS = {
    "server": {
        "host": "127.0.0.1",
        "port": 6712,
        "version": "v1",
        "admin_key": "",
        # "auto" or "confirm"; empty means: auto on loopback, confirm elsewhere
        "pairing": "",
        "code_ttl_hours": 24,
        # a code not yet activated is forgotten when its device has not asked for it or
        # polled with it for this long (a device waiting for the owner polls every 5 s)
        "code_idle_minutes": 15,
        # codes waiting to be activated, in all and per address: more are refused (429,
        # Retry-After) until some expire, so a stranger cannot fill the disk or the dashboard
        "max_pending_codes": 64,
        "max_pending_codes_per_address": 8,
        # confirm mode: at most one spoken announcement this often; the requests in
        # between are announced together ("3 devices want to pair")
        "pairing_announce_seconds": 30,
        "max_body_mb": 10,
        # the URL other devices should use; derived from host/port when empty
        "url": "",
        # host names (besides loopback, addresses, server.url's and this machine's name) that
        # requests may be addressed to; any other Host is refused (421): DNS rebinding
        "allowed_hosts": [],
        # serve the unauthenticated `/stt` route of the old backend (an open relay): the
        # same as speech.anonymous "all", for /stt only
        "public_stt": False,
    },
    "data_path": "",
    "lang": "en-us",
    "system_unit": "metric",
    "date_format": "DMY",
    "time_format": "full",
    "location": DEFAULT_LOCATION,
    # accept_anonymous_wakewords: take wake words sent without a device token (mycroft-core
    # 20.2) from the whole network, not only from this machine
    "listener": {"record_wakewords": False, "record_utterances": False,
                 "accept_anonymous_wakewords": False},
    # speech-to-text (services/stt.py): longest utterance, transcriptions at once in all (one
    # worker process each) and per device, requests waiting for a slot and for how long
    # (beyond: 503 + Retry-After), the longest one transcription may take
    "stt": {"module": "ovos-stt-plugin-pocketsphinx", "max_seconds": 120.0,
            "max_concurrent": 1, "max_per_device": 1, "max_queued": 2, "queue_seconds": 5.0,
            "timeout_seconds": 120.0},
    # text-to-speech (services/tts.py): the engine's default language ("" = lang), longest
    # text, phrase cache size, then the same limits as stt
    "tts": {"module": "ovos-tts-plugin-espeakng", "lang": "", "max_chars": 500, "cache_mb": 100.0,
            "max_concurrent": 1, "max_per_device": 1, "max_queued": 1, "queue_seconds": 5.0,
            "timeout_seconds": 30.0},
    # who may use the speech server routes (/speech/<secret>/..., services/speech.py) without
    # a device's speech URL: "none", "loopback" (processes on this machine) or "all"
    "speech": {"anonymous": "none"},
    "geolocation": {"online_fallback": False,
                    "nominatim_url": "https://nominatim.openstreetmap.org/search"},
    "microservices": {
        "wolfram_key": "",
        "owm_key": "",
        "owm_url": "https://api.openweathermap.org/data/2.5",  # OpenWeatherMap API base URL
        "wolfram_url": "https://api.wolframalpha.com",  # Wolfram|Alpha API base URL
        "timeout": 10.0,  # seconds to wait for an upstream (devices give up after 15)
        "cache": "sqlite",  # upstream answers kept in "sqlite" (data path, survives restarts) or "memory"
        # how long an upstream answer is reused, per endpoint (0: not cached)
        "cache_seconds": {"weather": 600, "onecall": 600, "forecast": 1800, "forecast_daily": 3600,
                          "wolfram": 3600},
        "email": {"recipient": "",
                  "smtp": {"username": "", "password": "", "host": "", "port": 465,
                           "security": "ssl",
                           "ca_file": ""}},  # PEM CA bundle to trust (self-signed mail server)
    },
    # what one device may make this backend keep or spend; a write over a limit is refused
    # with a JSON 413 (one item too large) or 429 (the device's share is full) naming the key
    "quotas": {
        "manifest_skills": 500,  # entries in the skills manifest a device uploads
        "manifest_kb": 256,  # its size
        "skill_settings_kb": 64,  # one skill's stored settings and settingsmeta
        "device_settings_kb": 1024,  # every skill's settings a device has, together
        "metrics_per_device": 10000,  # metrics kept per (opted-in) device
        "metrics_mb_per_device": 10,
        "metrics_days": 90,  # older metrics are deleted
        "recordings_per_device": 2000,  # utterance and wake-word recordings, each kind
        "recordings_mb_per_device": 200,
        "recordings_days": 365,  # older recordings are deleted
        "upstream_misses_per_hour": 30,  # weather/Wolfram calls not answered from the cache
    },
}

# Keys the old backend's config had that we accept without warning but do not use.
LEGACY_KEYS = {"server.database", "server.skip_auth", "server.geolocate",
               "server.override_location", "stt_servers", "default_values"}

PAIRING_LIMITS = ("code_idle_minutes", "max_pending_codes", "max_pending_codes_per_address",
                  "pairing_announce_seconds")

CHOICES = {
    "server.pairing": ("", "auto", "confirm"),
    "system_unit": ("metric", "imperial"),
    "date_format": ("DMY", "MDY"),
    "time_format": ("full", "half"),
    "microservices.email.smtp.security": ("ssl", "starttls", "plain"),
    "microservices.cache": ("sqlite", "memory"),
    "speech.anonymous": ("none", "loopback", "all"),
}


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key."""


def xdg_config_home() -> str:
    return os.environ.get("XDG_CONFIG_HOME") or expanduser("~/.config")


def xdg_data_home() -> str:
    return os.environ.get("XDG_DATA_HOME") or expanduser("~/.local/share")


def default_config_path() -> str:
    """Where the old backend kept its config, so existing files are found."""
    return join(xdg_config_home(), "ovos_backend", "ovos_backend.conf")


def default_data_path() -> str:
    return join(xdg_data_home(), "ovos_personal_backend")


def merge(base: dict, delta: dict) -> dict:
    """Recursively merge `delta` into a copy of `base`."""
    merged = copy.deepcopy(base)
    for key, value in delta.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_file(path: str) -> dict:
    """Read a config file; a missing file is an empty config, a broken one an error."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        # an empty file (just created with `touch`) means "all defaults", like a missing one
        data = json.loads(text) if text.strip() else {}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    return data


def save_file(path: str, data: dict) -> None:
    """Replace a config file atomically, readable by its owner only: it holds secrets."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(path: Optional[str] = None, overrides: Optional[dict] = None) -> dict:
    """Defaults, then the file, then explicit overrides (command line, skill settings)."""
    user = load_file(path or default_config_path())
    config = merge(DEFAULTS, user)
    if overrides:
        config = merge(config, overrides)
    return validate(config)


def _leaves(data: dict, prefix: str = ""):
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _leaves(value, name + ".")
        else:
            yield name, value


def _get(config: dict, dotted: str):
    value = config
    for part in dotted.split("."):
        value = value[part]
    return value


def unknown_keys(config: dict) -> List[str]:
    """Dotted keys that are neither ours, nor the old backend's, nor in a free-form block."""
    known = {name for name, _ in _leaves(DEFAULTS)}
    unknown = []
    for name, _ in _leaves(config):
        legacy = any(name == k or name.startswith(k + ".") for k in LEGACY_KEYS)
        # free-form blocks: plugin configs and the location object
        free = name.startswith(("stt.", "tts.", "location."))
        if name not in known and not legacy and not free:
            unknown.append(name)
    return unknown


def _warn_unknown(config: dict) -> None:
    for name in unknown_keys(config):
        LOG.warning(f"unknown config key ignored: {name}")


def _check_type(config: dict, name: str, default) -> None:
    value = _get(config, name)
    expected = type(default)
    if expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise ConfigError(f"{name} must be of type {expected.__name__}, got {value!r}")


def validate(config: dict) -> dict:
    """Refuse invalid values with a message naming the key; fill derived values."""
    _warn_unknown(config)
    for name, default in _leaves(DEFAULTS):
        if not name.startswith("location."):
            _check_type(config, name, default)
    for name, allowed in CHOICES.items():
        if _get(config, name) not in allowed:
            raise ConfigError(f"{name} must be one of {[a for a in allowed if a]}, "
                              f"got {_get(config, name)!r}")
    server = config["server"]
    if not 0 <= server["port"] <= 65535:
        raise ConfigError(f"server.port must be between 0 and 65535, got {server['port']}")
    if not server["version"] or "/" in server["version"]:
        raise ConfigError(f"server.version must be a single path segment, got {server['version']!r}")
    if server["admin_key"] and len(server["admin_key"]) < MIN_ADMIN_KEY_LENGTH:
        raise ConfigError(f"server.admin_key must be at least {MIN_ADMIN_KEY_LENGTH} characters "
                          "(or empty to disable the admin API)")
    if not 0 < server["max_body_mb"] <= 1024:
        raise ConfigError("server.max_body_mb must be between 1 and 1024")
    if server["code_ttl_hours"] <= 0:
        raise ConfigError("server.code_ttl_hours must be positive")
    if not all(isinstance(h, str) and re.fullmatch(r"[\w.-]+", h) for h in server["allowed_hosts"]):
        raise ConfigError("server.allowed_hosts must be a list of host names such as pi.lan, "
                          f"got {server['allowed_hosts']!r}")
    for key in PAIRING_LIMITS:
        if server[key] < 1:
            raise ConfigError(f"server.{key} must be at least 1, got {server[key]}")
    if any(limit <= 0 for limit in config["quotas"].values()):
        raise ConfigError("every quotas.* limit must be positive")
    _validate_speech(config["stt"], config["tts"])
    if not 0 < config["microservices"]["timeout"] <= 60:
        raise ConfigError("microservices.timeout must be between 0 and 60 seconds")
    if not server["pairing"]:
        server["pairing"] = "auto" if is_loopback(server["host"]) else "confirm"
    if not isinstance(config["location"], dict) or "coordinate" not in config["location"]:
        raise ConfigError("location must be a location object with a coordinate")
    if not isinstance(config["lang"], str) or not config["lang"]:
        raise ConfigError("lang must be a language tag such as en-us")
    config["lang"] = config["lang"].lower()
    config["data_path"] = expanduser(config["data_path"] or default_data_path())
    return config


def _validate_speech(stt: dict, tts: dict) -> None:
    """Speech may hold at most MAX_SPEECH_THREADS of the server's 8 worker threads
    (services/stt.py, Admission): the others keep every other route answering while it runs."""
    if not 0 < stt["max_seconds"] <= 3600:
        raise ConfigError("stt.max_seconds must be between 0 and 3600")
    if not 0 < tts["max_chars"] <= 10000 or tts["cache_mb"] < 0:
        raise ConfigError("tts.max_chars must be between 1 and 10000 and tts.cache_mb at least 0")
    for name, block in (("stt", stt), ("tts", tts)):
        for key in ("max_concurrent", "max_per_device"):
            if block[key] < 1:
                raise ConfigError(f"{name}.{key} must be at least 1, got {block[key]}")
        if block["max_queued"] < 0 or not 0 <= block["queue_seconds"] <= 60:
            raise ConfigError(f"{name}.max_queued must be at least 0 and {name}.queue_seconds "
                              "between 0 and 60")
        if not 0 < block["timeout_seconds"] <= 3600:
            raise ConfigError(f"{name}.timeout_seconds must be between 0 and 3600")
    held = sum(block["max_concurrent"] + block["max_queued"] for block in (stt, tts))
    if held > MAX_SPEECH_THREADS:
        raise ConfigError("stt.max_concurrent + stt.max_queued + tts.max_concurrent + "
                          f"tts.max_queued must be at most {MAX_SPEECH_THREADS}")


def is_loopback(host: str) -> bool:
    """True when only processes on this machine can reach the address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def public_url(config: dict) -> str:
    """The URL other devices should use; when bound to every address, guess the LAN one."""
    server = config["server"]
    if server["url"]:
        return server["url"].rstrip("/")
    host = server["host"]
    if host in ("0.0.0.0", "::", ""):
        host = lan_address()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{server['port']}"


def device_snippet(url: str, version: str) -> dict:
    """What a device's mycroft.conf needs to use the backend at `url`: without
    `backend_type: personal` ovos-config assumes an offline backend and the device never
    shows a pairing code; the wake-word upload URL lets its listener share samples."""
    return {"server": {"url": url, "version": version, "backend_type": "personal"},
            "listener": {"wake_word_upload": {"url": f"{url}/precise/upload"}}}


def lan_address() -> str:
    """The address this machine uses to reach the LAN (no packet is sent)."""
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def masked(config: dict) -> dict:
    """A copy fit for API responses and logs: secrets replaced by a marker."""
    shown = copy.deepcopy(config)
    for dotted in SECRETS:
        parent = shown
        *path, leaf = dotted.split(".")
        for part in path:
            parent = parent.get(part) or {}
        if parent.get(leaf):
            parent[leaf] = MASK
    return shown


MASK = "********"
SECRETS = ("server.admin_key", "microservices.wolfram_key", "microservices.owm_key",
           "microservices.email.smtp.password")
