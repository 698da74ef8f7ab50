"""Every language the skill speaks, end to end through ovos-core's intent service (padacioso):
the locale is complete (every intent, dialog and vocabulary of en-us in each language, the
same placeholders in each dialog), every intent has at least 10 phrasings, every phrasing
of every intent matches that intent and no other (nor ties with one), and one spoken
scenario per intent per language runs its handler, answers in that language and changes
the backend."""
import json
import os
import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import pytest
from ovos_spec_tools import expand

import ovos_skill_personal_backend
from ovos_skill_personal_backend.backend import config as config_module
from ovos_skill_personal_backend.backend import devices
from ovos_skill_personal_backend.backend.services import places
from skill_harness import Device, running_device, spoken_code
from test_skill_intents import add_device, fresh_skill, pair_quietly, request

LOCALE = os.path.join(os.path.dirname(ovos_skill_personal_backend.__file__), "locale")
ENGLISH = "en-us"


@dataclass(frozen=True)
class Lang:
    yes: str  # what the yes/no solver must read as yes
    name: str  # a device name, as its owner would say it
    place: str  # Tokyo, as the language writes it (the gazetteer's alternate names)
    second: str  # "the second one" (a place)
    and_word: str  # what joins the last two of a list


LANGS = {
    "en-us": Lang("yes", "kitchen", "tokyo", "the second one", "and"),
    "de-de": Lang("ja", "küche", "tokio", "die zweite", "und"),
    "es-es": Lang("sí", "cocina", "tokio", "la segunda", "y"),
    "fr-fr": Lang("oui", "cuisine", "tokyo", "la deuxième", "et"),
    "pt-pt": Lang("sim", "cozinha", "tóquio", "a segunda", "e"),
    "it-it": Lang("sì", "cucina", "tokyo", "la seconda", "e"),
    "nl-nl": Lang("ja", "keuken", "tokio", "de tweede", "en"),
}
SLOT = re.compile(r"{(\w+)}")


def tag(lang: str) -> str:
    """"de-de" -> "de-DE", as sessions carry it."""
    language, region = lang.split("-")
    return f"{language}-{region.upper()}"


def resources(lang: str, ext: str) -> Dict[str, str]:
    """{file name: path} of one kind of resource (intent, dialog, voc) in a language."""
    found = {}
    for folder, _, files in os.walk(os.path.join(LOCALE, lang)):
        found.update({f: os.path.join(folder, f) for f in files if f.endswith(f".{ext}")})
    return found


def lines(path: str) -> List[str]:
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def phrasings(lang: str) -> Dict[str, List[str]]:
    """{intent: every sentence its templates expand to}, slots still open."""
    return {name: sorted({sentence for line in lines(path) for sentence in expand(line)})
            for name, path in sorted(resources(lang, "intent").items())}


def filled(sentence: str, lang: str, code: str = "abc123") -> str:
    values = {"name": LANGS[lang].name, "location": LANGS[lang].place,
              "code": spoken_code(code.upper(), lang), "address": "192.168.1.20"}
    return SLOT.sub(lambda m: values[m.group(1)], sentence)


# the files ------------------------------------------------------------------------------

@pytest.mark.parametrize("lang", sorted(LANGS))
@pytest.mark.parametrize("ext", ["intent", "dialog", "voc"])
def test_every_resource_exists_in_every_language(lang, ext):
    assert sorted(resources(lang, ext)) == sorted(resources(ENGLISH, ext))


@pytest.mark.parametrize("lang", sorted(LANGS))
def test_dialogs_keep_their_placeholders(lang):
    """A dialog must fill the placeholders the skill passes, no more, no fewer."""
    for name, path in resources(ENGLISH, "dialog").items():
        wanted = set(SLOT.findall(" ".join(lines(path))))
        translated = lines(resources(lang, "dialog")[name])
        assert translated, f"{lang}/{name} is empty"
        for line in translated:
            assert set(SLOT.findall(line)) <= wanted, f"{lang}/{name}: {line}"
        assert set(SLOT.findall(" ".join(translated))) == wanted, f"{lang}/{name}"


@pytest.mark.parametrize("lang", sorted(LANGS))
def test_intents_keep_their_slots_and_have_ten_phrasings(lang):
    english = phrasings(ENGLISH)
    for name, sentences in phrasings(lang).items():
        assert len(sentences) >= 10, f"{lang}/{name}: only {len(sentences)} phrasings"
        slots = {frozenset(SLOT.findall(s)) for s in sentences}
        assert slots == {frozenset(SLOT.findall(s)) for s in english[name]}, f"{lang}/{name}"


@pytest.mark.parametrize("lang", sorted(LANGS))
def test_skill_json_describes_the_skill(lang):
    with open(os.path.join(LOCALE, lang, "skill.json"), encoding="utf-8") as f:
        meta = json.load(f)
    assert meta["name"] and meta["description"]
    assert len(meta["examples"]) >= 8


# matching -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def device():
    yield from running_device([tag(lang) for lang in LANGS if lang != ENGLISH])


@pytest.fixture
def skill(device):
    return fresh_skill(device)


def matched(device: Device, utterance: str, lang: str) -> Optional[str]:
    """The intent ovos-core picks, after checking that padacioso did not pick it out of a
    tie (it then takes whichever intent's match came first)."""
    container = device.padacioso_containers()[tag(lang)]
    confs = sorted((m["conf"] for m in container.calc_intents(utterance)), reverse=True)
    assert confs[:2] != confs[:1] * 2, f"{utterance!r} ties between intents"
    return device.intent_of(utterance, tag(lang))


@pytest.mark.parametrize("lang", sorted(LANGS))
def test_every_phrasing_matches_its_own_intent(device, lang):
    """The whole phrasing set: each sentence reaches its intent, and no intent steals
    another's sentences (say, "rename this device to ..." against "forget this device")."""
    missed = {}
    for intent, sentences in phrasings(lang).items():
        for sentence in sentences:
            utterance = filled(sentence, lang)
            got = matched(device, utterance, lang)
            if got != intent:
                missed[utterance] = (intent, got)
    assert missed == {}


@pytest.mark.parametrize("lang", sorted(LANGS))
def test_skill_json_examples_match_intents(device, lang):
    with open(os.path.join(LOCALE, lang, "skill.json"), encoding="utf-8") as f:
        examples = json.load(f)["examples"]
    for example in examples:
        utterance = example.lower().strip("?!.¿¡ ")
        assert matched(device, utterance, lang) in resources(lang, "intent"), example


EXAMPLES = [
    # the examples, and the polite and indirect forms it asks for
    ("please pair my device", "pair.intent"),
    ("pair this speaker", "pair.intent"),
    ("could you pair this speaker", "pair.intent"),
    ("please connect me to the backend", "pair.intent"),
    ("which city am i in", "where.am.i.intent"),
    ("what town are we in", "where.am.i.intent"),
    ("deny the new device", "deny.new.intent"),
    ("reject pairing code a b c one two three", "deny.code.intent"),
    ("is any device waiting to pair", "pairings.waiting.intent"),
    ("which devices are online", "devices.online.intent"),
    ("start recording wake words for the whole house", "house.recording.on.intent"),
    # near neighbours that must stay apart
    ("rename this device to kitchen", "rename.device.intent"),
    ("forget this device", "forget.device.intent"),
    ("which devices are paired", "list.devices.intent"),
    ("start saving my recordings", "recordings.on.intent"),
    ("approve the new device", "approve.new.intent"),
    ("don't approve the new device", "deny.new.intent"),
    ("use the personal backend", "use.backend.intent"),
    ("stop using the personal backend", "stop.using.intent"),
    ("set my location to tokyo", "change.location.intent"),
]


@pytest.mark.parametrize("utterance, intent", EXAMPLES)
def test_english_examples_and_confusions(device, utterance, intent):
    assert matched(device, utterance, ENGLISH) == intent


# one spoken scenario per intent per language --------------------------------------------

@dataclass
class Scenario:
    dialogs: List[str]  # what the skill says, turn by turn (a yes is said between turns)
    setup: Callable = lambda skill, lang: {}  # noqa: E731 (returns the code to say, if any)
    check: Callable = lambda skill, state: None  # noqa: E731


def _pending(skill, lang):
    return {"code": request(skill)}


def _other_device(skill, lang):
    return {"uuid": add_device(skill, LANGS[lang].name.title())["uuid"]}


def _paired(skill, lang):
    return {"uuid": pair_quietly(skill), "name": LANGS[lang].name.title()}


def _paired_in_tokyo(skill, lang):
    uuid = pair_quietly(skill)
    devices.set_location(skill.store, uuid, devices.normalise_location(places.search("Tokyo", 1)[0]))
    return {"uuid": uuid}


def _status(status):
    return lambda skill, state: skill.store.pairings.get(state["code"])["status"] == status


SCENARIOS = {
    "pair.intent": Scenario(["paired"], check=lambda skill, state: bool(skill.this_device())),
    "use.backend.intent": Scenario(["already.using"]),
    "stop.using.intent": Scenario(["stopped.using"],
                                  check=lambda skill, state: not skill._points_here()),
    "approve.new.intent": Scenario(["approved"], _pending, _status("approved")),
    "approve.code.intent": Scenario(["approved"], _pending, _status("approved")),
    "deny.new.intent": Scenario(["denied"], _pending, _status("denied")),
    "deny.code.intent": Scenario(["denied"], _pending, _status("denied")),
    "pairings.waiting.intent": Scenario(["one.waiting"], _pending),
    "list.devices.intent": Scenario(["one.device"], _other_device),
    "devices.online.intent": Scenario(["online.none"], _other_device),
    "forget.device.intent": Scenario(
        ["confirm.forget", "forgot.device"], _other_device,
        lambda skill, state: skill.store.devices.get(state["uuid"]) is None),
    "rename.device.intent": Scenario(
        ["renamed"], _paired,
        lambda skill, state: skill.store.devices.get(state["uuid"])["name"] == state["name"]),
    "recordings.on.intent": Scenario(
        ["recordings.on.backend.off"], _paired,
        lambda skill, state: skill.store.devices.get(state["uuid"])["opt_in"] is True),
    "recordings.off.intent": Scenario(["recordings.off"], _paired),
    "house.recording.on.intent": Scenario(
        ["confirm.house.recording.on", "house.recording.on"],
        check=lambda skill, state: skill.backend_config["listener"]["record_wakewords"]),
    "house.recording.off.intent": Scenario(["house.recording.already.off"]),
    "backend.address.intent": Scenario(["backend.address.local.only"]),
    "where.am.i.intent": Scenario(["location.is"], _paired_in_tokyo),
    "change.location.intent": Scenario(["location.changed", "location.changed"], _paired,
                                       lambda skill, state: skill.store.devices.get(
                                           state["uuid"])["location"]["city"]["name"] == "Tokyo"),
}


def first_phrasing(path: str, with_slots: bool) -> str:
    """The first sentence the intent's first line (with or without slots) says, taking
    the first choice of every group: the plainest way to say it."""
    line = next(line for line in lines(path) if bool(SLOT.search(line)) == with_slots)
    inner = re.compile(r"\(([^()]*)\)")
    while inner.search(line):
        line = inner.sub(lambda m: m.group(1).split("|")[0], line)
    return " ".join(line.split())


@pytest.fixture
def clean_backend(skill):
    yield skill
    restore_backend(skill)


def restore_backend(skill) -> None:
    """Put back what scenarios change besides devices and pairings."""
    path = config_module.default_config_path()
    if os.path.exists(path):
        os.remove(path)
    skill.backend_config["listener"].update(record_wakewords=False, record_utterances=False)
    if not skill.settings.get("point_device_here"):
        skill.settings["point_device_here"] = True
        skill.settings.store()
        skill.on_settings_changed()


@pytest.mark.parametrize("lang", sorted(LANGS))
@pytest.mark.parametrize("intent", sorted(SCENARIOS))
def test_scenario(device, clean_backend, lang, intent):
    run_scenario(device, clean_backend, lang, intent)


def run_scenario(device: Device, skill, lang: str, intent: str) -> None:
    """Say the intent's plainest phrasing in `lang` (and yes, or the place, when asked):
    the skill answers with the scenario's dialogs, in that language, and did the work."""
    scenario = SCENARIOS[intent]
    talk = device.conversation(tag(lang))
    state = scenario.setup(skill, lang)
    path = resources(lang, "intent")[intent]
    # the location intent is asked both ways: with the place, then without (it asks where)
    ways = [True, False] if intent == "change.location.intent" else [bool(SLOT.search(
        " ".join(lines(path))))]
    said = []
    for with_slots in ways:
        utterance = filled(first_phrasing(path, with_slots), lang, state.get("code", ""))
        talk.say(utterance)
        if talk.last_dialog() in ("confirm.forget", "confirm.house.recording.on"):
            said.append(talk.last_dialog())
            talk.say(LANGS[lang].yes)
        elif talk.last_dialog() == "ask.where":
            talk.say(LANGS[lang].place)
        said.append(talk.last_dialog())
    assert said == scenario.dialogs, utterance
    spoken = talk.spoken()[-1]
    assert spoken.data["lang"].lower() == lang or spoken.context.get("lang", "").lower() == lang
    assert scenario.check(skill, state) in (None, True)


@pytest.mark.parametrize("lang", sorted(LANGS))
def test_choosing_a_place_by_its_position(device, skill, lang):
    """"The second one" as each language says it (Spanish and Italian feminine ordinals
    too, which the number parser misses) picks the second place offered."""
    talk = device.conversation(tag(lang))
    path = resources(lang, "intent")["change.location.intent"]
    talk.say(first_phrasing(path, True).replace("{location}", "paris"))
    assert talk.last_dialog() == "which.place"
    offered = [c["address"] for c in places.search("paris", limit=3)]
    talk.say(LANGS[lang].second)
    assert talk.last_dialog() == "location.changed"
    assert talk.last_data()["place"] == offered[1]


@pytest.mark.parametrize("lang", sorted(LANGS))
def test_lists_are_joined_in_the_language(device, skill, lang):
    """"Kitchen et Bedroom", not ovos-workshop's "Kitchen ,  Bedroom" (it has no French
    connectors)."""
    add_device(skill, "Kitchen")
    add_device(skill, "Bedroom")
    talk = device.conversation(tag(lang))
    talk.say(first_phrasing(resources(lang, "intent")["list.devices.intent"], False))
    assert talk.last_dialog() == "devices.list"
    assert talk.last_data()["names"] == f"Kitchen {LANGS[lang].and_word} Bedroom"
