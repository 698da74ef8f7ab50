"""Drive the skill end to end: the real ovos-core skill loader and intent service
(ovoscope's MiniCroft), the padacioso intent engine, and a conversation helper that
speaks to the skill the way a listener would, turn by turn.

Import after conftest.py has isolated the XDG paths (pytest does that first).
"""
import contextlib
import functools
import json
import os
import string
import threading
import time
import uuid
from types import SimpleNamespace
from typing import List, Optional

from ovos_bus_client.message import Message
from ovos_bus_client.session import Session
from ovos_config.config import Configuration
from ovos_config.locations import find_user_config
from ovos_number_parser import pronounce_number
from ovoscope import CONVERSE_PIPELINE, PADACIOSO_PIPELINE, get_minicroft

from conftest import SANDBOX, free_port

SKILL_ID = "ovos-skill-personal-backend.openvoiceos"
# converse is what routes an answer to a skill waiting in get_response / ask_yesno
PIPELINE = CONVERSE_PIPELINE + PADACIOSO_PIPELINE
# padacioso matches in a process pool created per utterance: one worker forks once,
# not four times, which is what makes a turn slow in a big test process
PIPELINE_CONFIG = {"ovos-padacioso-pipeline-plugin": {"workers": 1}}
PADACIOSO = "ovos-padacioso-pipeline-plugin"
WAITING = f"{SKILL_ID}.get_response.waiting"
TURN_TIMEOUT = 15


def settings_path() -> str:
    return skill_settings_path(SKILL_ID)


def read_settings() -> dict:
    with open(settings_path()) as f:
        return json.load(f)


def write_settings(**values) -> dict:
    """Settings for the next load: an ephemeral port and a fresh data folder unless given."""
    settings = {"port": free_port(), "pairing": "confirm", "point_device_here": True,
                "data_path": os.path.join(SANDBOX, f"data-{uuid.uuid4().hex[:8]}")}
    settings.update(values)
    os.makedirs(os.path.dirname(settings_path()), exist_ok=True)
    with open(settings_path(), "w") as f:
        json.dump(settings, f)
    return settings


def user_config() -> dict:
    """The device's user mycroft.conf as the skill left it."""
    path = find_user_config()
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def write_user_config(data: Optional[dict]) -> None:
    path = find_user_config()
    if data is None:
        if os.path.exists(path):
            os.remove(path)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f)


def skill_settings_path(skill_id: str) -> str:
    return os.path.join(os.environ["XDG_CONFIG_HOME"], "mycroft", "skills", skill_id,
                        "settings.json")


def state_path() -> str:
    """The skill's own bookkeeping (device/state.py), in its ovos-workshop data folder."""
    return os.path.join(os.environ["XDG_DATA_HOME"], "mycroft", "filesystem", "skills", SKILL_ID,
                        "state.json")


def identity_path() -> str:
    return os.path.join(os.environ["XDG_CONFIG_HOME"], "mycroft", "identity", "identity2.json")


def reset_device() -> None:
    """Forget what a previous test left on the device: identity, config, settings, state."""
    for path in (identity_path(), find_user_config(), settings_path(), state_path()):
        if os.path.exists(path):
            os.remove(path)
    # this process's Configuration() caches the files: drop the removed user config too, or
    # later tests (other modules) still see the URLs the skill wrote
    for cached in Configuration.xdg_configs:
        cached.clear()
    Configuration.reload()


def spoken_code(code: str, lang: str = "en-us") -> str:
    """A pairing code as its owner reads it aloud: letters, and digits as the language's
    words ("A C E drei vier sieben")."""
    return " ".join(pronounce_number(int(c), lang=lang.split("-")[0]) if c.isdigit() else c.lower()
                    for c in code)


@contextlib.contextmanager
def padatious_slot_braces_kept():
    """Work around an ovos-padatious 1.4.3 bug: it strips trailing punctuation from every
    sample, a slot's closing brace included ("approve code {code}" -> "approve code {code"),
    and the ovos-utils alpha that ovoscope needs then rejects the sample, and the whole
    intent with it: every intent with a line ending in a slot would be lost. Inside this,
    only padatious's own module sees the punctuation without "}"."""
    import ovos_padatious.opm  # only where Padatious is installed
    kept = ovos_padatious.opm.string
    ovos_padatious.opm.string = SimpleNamespace(punctuation=string.punctuation.replace("}", ""))
    try:
        yield
    finally:
        ovos_padatious.opm.string = kept


def running_device(secondary_langs: Optional[List[str]] = None, pipeline: List[str] = PIPELINE,
                   pipeline_config: Optional[dict] = None, boot_timeout: float = 60,
                   **settings):
    """For a module fixture (`yield from`): a device on fresh settings, reset afterwards."""
    reset_device()
    write_settings(**settings)
    device = Device(secondary_langs=secondary_langs, pipeline=pipeline,
                    pipeline_config=pipeline_config, boot_timeout=boot_timeout)
    yield device
    device.stop()
    reset_device()


class Device:
    """A device running the skill inside a MiniCroft, with a message log."""

    def __init__(self, skills=(SKILL_ID,), secondary_langs: Optional[List[str]] = None,
                 pipeline: List[str] = PIPELINE, pipeline_config: Optional[dict] = None,
                 boot_timeout: float = 60):
        """`secondary_langs`: the other languages the skill loads its intents for;
        `pipeline`: the intent stages sessions use (padacioso's unless given), with
        `pipeline_config` for their plugins; `boot_timeout`: how long loading (and
        training, for Padatious) may take."""
        self.pipeline = pipeline
        self.croft = get_minicroft(list(skills), default_pipeline=pipeline, lang="en-US",
                                   secondary_langs=secondary_langs, max_wait=boot_timeout,
                                   pipeline_config={**PIPELINE_CONFIG, **(pipeline_config or {})})
        for container in self.padacioso_containers().values():
            container.calc_intents = functools.partial(_match_in_process, container)
        self.boot = list(self.croft.boot_messages)
        self.log: List[Message] = []
        self._changed = threading.Condition()
        self.croft.bus.on("message", self._record)

    def _record(self, serialized: str) -> None:
        with self._changed:
            self.log.append(Message.deserialize(serialized))
            self._changed.notify_all()

    def padacioso_containers(self) -> dict:
        """The padacioso pipeline's intent containers, by language."""
        return self.croft.intents.pipeline_plugins[PADACIOSO].containers

    @property
    def skill(self):
        loader = self.croft.plugin_skills.get(SKILL_ID)
        return loader.instance if loader else None

    def conversation(self, lang: str = "en-US") -> "Conversation":
        return Conversation(self, lang)

    def intent_of(self, utterance: str, lang: str = "en-US") -> Optional[str]:
        """The intent the intent service matches `utterance` to (the skill's own intent
        file name, or the full name of another skill's), without running its handler."""
        session = Session(str(uuid.uuid4()), pipeline=self.pipeline, lang=lang).serialize()
        reply = self.croft.bus.wait_for_response(
            Message("intent.service.intent.get", {"utterance": utterance, "lang": lang},
                    {"session": session}),
            "intent.service.intent.reply", timeout=TURN_TIMEOUT)
        assert reply is not None, f"the intent service did not answer {utterance!r}"
        intent = reply.data["intent"]
        return intent and intent["intent_name"].removeprefix(f"{SKILL_ID}:")

    def wait_for(self, predicate, start: int = 0, timeout: float = TURN_TIMEOUT) -> bool:
        """Wait until `predicate(log[start:])` holds; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.log[start:]):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def wait_for_message(self, predicate, start: int = 0,
                         timeout: float = TURN_TIMEOUT) -> Optional[Message]:
        """The first message from `log[start:]` matching `predicate`, waiting for it."""
        found = []

        def seen(messages):
            found[:] = [m for m in messages if predicate(m)][:1]
            return bool(found)

        self.wait_for(seen, start, timeout)
        return found[0] if found else None

    def stop(self) -> None:
        self.croft.stop()


def _match_in_process(container, query: str):
    """padacioso's `calc_intents`, matching in this process: padacioso hands each intent
    to a process pool created per utterance, pickling the whole container every time (4 to
    15 s per utterance on a busy machine). The pool only spreads the same `_match` calls."""
    excluded = container._filter(query)
    for name, regexes in container.intent_samples.items():
        if name not in excluded:
            match = container._match(query, name, regexes)
            if match is not None:
                yield match


class Conversation:
    """One session: `say()` sends an utterance (from a helper thread, as the bus is
    synchronous) and returns when the skill has answered or waits for an answer."""

    def __init__(self, device: Device, lang: str = "en-US"):
        self.device = device
        self.lang = lang
        self.session = Session(str(uuid.uuid4()), pipeline=device.pipeline, lang=lang).serialize()
        self.start = len(device.log)
        self.turn: List[Message] = []  # what the last say() produced

    def say(self, utterance: str) -> List[Message]:
        log = self.device.log
        begin = len(log)
        message = Message("recognizer_loop:utterance", {"utterances": [utterance], "lang": self.lang},
                          {"session": self.session, "source": "test", "destination": ["skills"]})
        threading.Thread(target=self.device.croft.bus.emit, args=(message,), daemon=True).start()

        def turn_over(messages: List[Message]) -> bool:
            types = [m.msg_type for m in messages]
            if "ovos.utterance.handled" in types or WAITING in types:
                return True
            # a rejected answer is asked again inside the same get_response (no new
            # WAITING); a new question must be awaited until it listens (WAITING)
            reprompted = any(m.msg_type == "speak" and m.data.get("expect_response")
                             for m in messages)
            return reprompted and "skill.converse.get_response.enable" not in types

        assert self.device.wait_for(turn_over, begin), f"no answer to {utterance!r}"
        time.sleep(0.05)  # let messages emitted right after the turn land in the log
        # the next turn carries the session as the skill left it (active skill, response mode)
        ours = self.session["session_id"]
        sessions = [m.context["session"] for m in log[begin:]
                    if (m.context or {}).get("session", {}).get("session_id") == ours]
        if sessions:
            self.session = sessions[-1]
        self.turn = log[begin:]
        return self.turn

    @property
    def messages(self) -> List[Message]:
        return self.device.log[self.start:]

    def spoken(self) -> List[Message]:
        return [m for m in self.messages if m.msg_type == "speak"]

    def dialogs(self) -> List[str]:
        """The dialog files the skill spoke from in the whole conversation (raw speech,
        such as a re-prompt, shows as None)."""
        return [_dialog(m) for m in self.spoken()]

    def last_dialog(self) -> Optional[str]:
        """The dialog of the last thing said in answer to the last utterance (None if the
        skill said nothing then)."""
        said = [m for m in self.turn if m.msg_type == "speak"]
        return _dialog(said[-1]) if said else None

    def last_data(self) -> dict:
        said = [m for m in self.turn if m.msg_type == "speak"]
        return ((said[-1].data.get("meta") or {}).get("data") or {}) if said else {}

    def emitted(self, msg_type: str) -> List[Message]:
        return [m for m in self.messages if m.msg_type == msg_type]


def _dialog(message: Message) -> Optional[str]:
    return (message.data.get("meta") or {}).get("dialog")
