"""HTML forms <-> domain values: what the pages show, and what a submitted form changes.

Checking stays in the domain modules (devices, reconfigure, skill_settings); this
module only turns form strings into typed values and names the field when it cannot.
"""
from typing import Dict, List, NamedTuple, Tuple

from werkzeug.datastructures import MultiDict

from .. import config as config_module
from ..devices import CHOICES as DEVICE_CHOICES
from ..errors import BadRequest
from ..reconfigure import RESTART_KEYS
from ..skill_settings import to_native, to_wire


# refused values ------------------------------------------------------------------------

CLEAR_FIELD = "_clear_secret"  # a ticked "clear" box next to a stored secret sends its key


class FieldError(BadRequest):
    """A refused form value: the message names the field by its label, and `field` says
    which input the page marks (aria-invalid, focus) so the owner finds it at once."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


def labelled(error: BadRequest, labels: Dict[str, str]) -> FieldError:
    """`error` as a FieldError. The domain names a field by its key ("server.port must
    be ..."), which means nothing to the owner: say its label instead."""
    if isinstance(error, FieldError):
        return error
    for key in sorted(labels, key=len, reverse=True):  # longest first: "server.url" before "server"
        if error.message.startswith(key + " "):
            return FieldError(f"{labels[key]}: {error.message[len(key) + 1:]}", key)
    return FieldError(error.message)


def _cleared(form: MultiDict, key: str, label: str, typed: str) -> bool:
    """Whether the owner ticked "clear" for the stored secret `key`; typing a new value
    as well is contradictory, and refused rather than guessed."""
    clear = key in form.getlist(CLEAR_FIELD)
    if clear and typed:
        raise FieldError(f"{label}: type a new value or tick \u201cclear\u201d, not both", key)
    return clear


# device preferences --------------------------------------------------------------------

DEVICE_LABELS = {"name": "Name", "device_location": "Placement", "email": "E-mail for messages from skills",
                 "lang": "Language", "system_unit": "Units", "date_format": "Date format",
                 "time_format": "Time format", "ww_id": "Wake word", "voice_id": "Voice",
                 "opt_in": "Opt in", "isolated_skills": "Isolated skills"}
DEVICE_TEXT = ("name", "device_location", "email", "lang", "ww_id", "voice_id")
DEVICE_CHECKBOXES = ("opt_in", "isolated_skills")


def device_changes(form: MultiDict) -> dict:
    """The device fields of the edit form; an unticked checkbox is sent as nothing."""
    changes = {key: form.get(key, "").strip() for key in DEVICE_TEXT if key in form}
    changes.update({key: key in form for key in DEVICE_CHECKBOXES})
    changes.update({key: form[key] for key in DEVICE_CHOICES if key in form})
    return changes


# backend configuration -----------------------------------------------------------------

class Field(NamedTuple):
    key: str              # dotted config key
    label: str
    kind: str = "text"    # text, url, int, checkbox, select, secret
    hint: str = ""
    choices: Tuple[Tuple[str, str], ...] = ()  # (value, label) for selects

    @property
    def input_id(self) -> str:
        return "cfg-" + self.key.replace(".", "-").replace("_", "-")

    @property
    def needs_restart(self) -> bool:
        return any(self.key == k or self.key.startswith(k + ".") for k in RESTART_KEYS)

    @property
    def clearable(self) -> bool:
        """A stored secret the page can erase (not the admin key: that would lock the
        owner out, and the backend refuses it anyway)."""
        return self.kind == "secret" and self.key != "server.admin_key"


def _choices(key: str, labels: Dict[str, str]) -> Tuple[Tuple[str, str], ...]:
    return tuple((value, labels.get(value, value)) for value in config_module.CHOICES[key])


CONFIG_SECTIONS: Tuple[Tuple[str, Tuple[Field, ...]], ...] = (
    ("Defaults for new devices", (
        Field("lang", "Language", hint="A language tag such as en-us or pt-pt."),
        Field("system_unit", "Units", "select", choices=_choices("system_unit", {})),
        Field("date_format", "Date format", "select",
              choices=_choices("date_format", {"DMY": "day/month/year", "MDY": "month/day/year"})),
        Field("time_format", "Time format", "select",
              choices=_choices("time_format", {"full": "24 hour", "half": "12 hour"})),
    )),
    ("Server", (
        Field("server.url", "URL devices use", "url",
              hint="Leave empty to derive it from the address and port."),
        Field("server.pairing", "Pairing", "select",
              choices=(("auto", "automatic (any device that asks)"),
                       ("confirm", "confirm each device here"))),
        Field("server.code_ttl_hours", "Pairing code lifetime (hours)", "int"),
        Field("server.host", "Listen address", hint="127.0.0.1: this machine only; 0.0.0.0: the whole LAN."),
        Field("server.port", "Port", "int"),
        Field("server.version", "API prefix"),
        Field("server.max_body_mb", "Largest upload (MB)", "int"),
        Field("server.admin_key", "New admin key", "secret",
              hint="At least 16 characters. Leave empty to keep the current key; "
                   "changing it logs everyone out."),
    )),
    ("Recordings", (
        Field("listener.record_utterances", "Keep what opted-in devices say (STT audio)", "checkbox"),
        Field("listener.record_wakewords", "Keep wake-word samples of opted-in devices", "checkbox"),
    )),
    ("Speech to text", (
        Field("stt.module", "STT plugin", hint="ovos-stt-plugin-fasterwhisper: Whisper, with the models "
                                               "below; pocketsphinx answers while no Whisper model loads."),
        Field("stt.english_model", "Whisper model for English",
              hint="auto: the last model added with `stt-model add`, else tiny.en (large-v3-turbo on a GPU); "
                   "or a model name (base.en, small.en...) or a model folder."),
        Field("stt.multilingual_model", "Whisper model for other languages",
              hint="auto: the last multilingual model added, else base (large-v3-turbo on a GPU)."),
        Field("stt.device", "Run Whisper on", "select",
              choices=_choices("stt.device", {"auto": "a CUDA GPU when there is one", "cpu": "the CPU",
                                              "cuda": "the CUDA GPU"})),
        Field("stt.download", "Fetch missing models from the model hub (once, in the background)",
              "checkbox"),
        Field("stt.vocabulary", "Bias recognition towards the house's commands", "checkbox"),
    )),
    ("Online services", (
        Field("microservices.owm_key", "OpenWeatherMap key", "secret", hint="Leave empty to keep."),
        Field("microservices.wolfram_key", "Wolfram Alpha app id", "secret", hint="Leave empty to keep."),
        Field("geolocation.online_fallback", "Look up unknown places online", "checkbox"),
        Field("geolocation.nominatim_url", "Nominatim search URL", "url"),
    )),
    ("E-mail", (
        Field("microservices.email.recipient", "Default recipient"),
        Field("microservices.email.smtp.host", "SMTP server"),
        Field("microservices.email.smtp.port", "SMTP port", "int"),
        Field("microservices.email.smtp.security", "SMTP security", "select",
              choices=_choices("microservices.email.smtp.security",
                               {"ssl": "SSL/TLS", "starttls": "STARTTLS", "plain": "none"})),
        Field("microservices.email.smtp.username", "SMTP user name"),
        Field("microservices.email.smtp.password", "SMTP password", "secret", hint="Leave empty to keep."),
    )),
)


def config_value(config: dict, field: Field):
    """What the form shows: secrets never (only whether one is set)."""
    value = config
    for part in field.key.split("."):
        value = value.get(part, "") if isinstance(value, dict) else ""
    if field.kind == "secret":
        return bool(value)
    return value


CONFIG_LABELS = {f.key: f.label for _, fields in CONFIG_SECTIONS for f in fields}


def _config_value(form: MultiDict, field: Field):
    """The value the form gives `field`, or None for "leave it as it is": an empty
    secret keeps the stored one, unless its "clear" box is ticked."""
    if field.kind == "checkbox":
        return field.key in form
    value = form.get(field.key, "").strip()
    if field.kind == "secret":
        cleared = field.clearable and _cleared(form, field.key, field.label, value)
        return "" if cleared else (value or None)
    if field.key not in form:
        return None
    if field.kind == "int":
        try:
            return int(value)
        except ValueError:
            raise FieldError(f"{field.label}: a whole number is needed", field.key) from None
    return value


def config_delta(form: MultiDict) -> dict:
    """A partial config from the configuration form (only the fields it changes)."""
    delta: dict = {}
    for _, fields in CONFIG_SECTIONS:
        for field in fields:
            value = _config_value(form, field)
            if value is None:
                continue
            parent = delta
            *path, leaf = field.key.split(".")
            for part in path:
                parent = parent.setdefault(part, {})
            parent[leaf] = value
    return delta


# skill settings ------------------------------------------------------------------------------

# a device names its settings fields: their inputs are namespaced, so that no field name
# ("csrf_token", "action", "_clear_secret") can stand in for the form's own fields
SETTING_PREFIX = "setting-"


def setting_input(name: str) -> str:
    """The form field name of the setting `name`."""
    return SETTING_PREFIX + name


INPUT_TYPES = {"text": "text", "email": "email", "password": "password", "number": "number",
               "checkbox": "checkbox", "select": "select", "label": "label", "textarea": "textarea"}


def parse_options(options) -> List[Tuple[str, str]]:
    """settingsmeta `"Label A|a;Label B|b"` -> [("Label A", "a"), ...]."""
    if not isinstance(options, str):
        return []
    pairs = []
    for item in options.split(";"):
        if item.strip():
            label, _, value = item.partition("|")
            pairs.append((label.strip(), (value if _ else label).strip()))
    return pairs


def _fields(meta: dict):
    for section in (meta or {}).get("sections", []):
        for field in section.get("fields", []):
            if not field.get("hide"):
                yield section, field


def settings_form(meta: dict, settings: dict) -> List[dict]:
    """Sections of view models for the template, one per settingsmeta section."""
    sections, number = [], 0
    for section in (meta or {}).get("sections", []):
        shown = []
        for field in section.get("fields", []):
            if field.get("hide"):
                continue
            number += 1
            kind = INPUT_TYPES.get(field.get("type", "text"), "text")
            name = field.get("name") if isinstance(field.get("name"), str) else ""
            if not name and kind != "label":
                continue
            value = settings[name] if name in settings else _default(field, kind)
            shown.append({
                "name": name, "form_name": setting_input(name), "kind": kind,
                "input_id": f"setting-{number}",
                "label": str(field.get("label") or name), "hint": str(field.get("hint") or ""),
                "placeholder": str(field.get("placeholder") or ""),
                "value": "" if kind == "password" else to_wire(value),
                "has_value": bool(value) if kind == "password" else None,
                "checked": value is True, "options": parse_options(field.get("options"))})
        sections.append({"name": str(section.get("name") or ""), "fields": shown})
    return sections


def _default(field: dict, kind: str):
    """The settingsmeta default of a field that has no stored value."""
    try:
        return to_native(field["value"], kind)
    except (KeyError, BadRequest):
        return field.get("value")


def _editable(meta: dict):
    """(name, kind, label, field) of every field the settings form shows an input for."""
    for _, field in _fields(meta):
        name, kind = field.get("name"), INPUT_TYPES.get(field.get("type", "text"), "text")
        if isinstance(name, str) and name and kind != "label":
            yield name, kind, str(field.get("label") or name), field


def settings_from_form(meta: dict, form: MultiDict, current: dict) -> dict:
    """The new settings: the current ones, changed by every field the form shows."""
    settings = dict(current)
    for name, kind, label, field in _editable(meta):
        if kind == "checkbox":
            settings[name] = setting_input(name) in form
            continue
        value = form.get(setting_input(name))
        if kind == "password" and _cleared(form, name, label, value or ""):
            settings[name] = ""
        elif value is None or (kind == "password" and not value):
            continue  # not sent, or a blank password: keep
        elif kind == "number":
            try:
                settings[name] = to_native(value.strip(), "number")
            except BadRequest:
                raise FieldError(f"{label}: a number is needed", name) from None
        elif kind == "select":
            allowed = [v for _, v in parse_options(field.get("options"))]
            if allowed and value not in allowed:
                raise FieldError(f"{label}: choose one of the options", name)
            settings[name] = value
        else:
            settings[name] = value
    return settings


def typed_settings(meta: dict, form: MultiDict, current: dict) -> dict:
    """The settings as the refused form had them, unchecked: the page shows the owner
    what they typed (the wrong value too, to correct it), never the stored values."""
    settings = dict(current)
    for name, kind, _, _ in _editable(meta):
        if kind == "checkbox":
            settings[name] = setting_input(name) in form
        elif setting_input(name) in form and kind != "password":
            settings[name] = form[setting_input(name)]
    return settings
