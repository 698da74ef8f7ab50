"""What the house says: phrases that bias speech recognition towards its own commands.

Whisper is given them as its initial prompt (services/stt.py, `prompt`): what any voice
assistant is asked most (locale/<lang>/common_commands.txt: the stock OVOS skills' time,
weather, timer, volume, music... commands), then the examples and intent examples of this
skill and of the skills installed on the house's devices, as far as this machine knows them. A device's manifest (PUT /skillJson) names its skills but holds
no examples, so a skill's examples are read from its `locale/<lang>/` files when it is
installed here too (the backend usually runs inside the house's own ovos-core). On
espeak-ng speech the prompt takes tiny.en's WER on the skill's commands well down and
leaves other commands as they were (bench/stt_accuracy.py measures both).
"""
import functools
import glob
import json
import re
from importlib import metadata
from importlib.util import find_spec
from os.path import dirname, join
from typing import Iterable, List, Tuple

from ovos_utils.log import LOG

from . import devices
from .store import Store

SKILL_GROUPS = ("opm.skill", "ovos.plugin.skill")
OWN_LOCALE = join(dirname(dirname(__file__)), "locale")
COMMON_COMMANDS = "common_commands.txt"
_CHOICE = re.compile(r"\(([^()]*)\)")   # an innermost "(a|b)" or "(a|)"
_OPTIONAL_OR_SLOT = re.compile(r"\[[^\]]*\]|\{[^}]*\}")     # "[x]" and "{slot}" -> ""


def phrases(store: Store, lang: str) -> List[str]:
    """The common commands in `lang`; the examples each skill shows its owner (skill.json:
    the commands it is most asked, whatever the number of its intents), this skill's first,
    then those of the other skills the devices' manifests list and this machine has
    installed; then their intent examples, the first of each intent before the second
    ones. Most likely first, so a prompt cut short keeps what matters."""
    lang = lang.lower()
    skill_ids = sorted({skill for device in devices.list_all(store)
                        for skill in devices.installed_skills(device) or ()})
    folders = [OWN_LOCALE] + [join(folder, "locale") for folder in _skill_folders(tuple(skill_ids))]
    found: List[str] = list(_common_commands(lang))
    candidates = [phrase for folder in folders for phrase in _shown_examples(folder, lang)]
    candidates += [phrase for folder in folders
                   for phrase in _interleaved(_intent_examples(folder, lang))]
    for phrase in candidates:
        if phrase not in found:
            found.append(phrase)
    return found


@functools.lru_cache(maxsize=64)
def _shown_examples(locale: str, lang: str) -> Tuple[str, ...]:
    """The `examples` of `locale`/<lang>/skill.json, as sentences without end punctuation."""
    try:
        with open(join(locale, lang, "skill.json"), encoding="utf-8") as f:
            examples = json.load(f).get("examples") or []
    except (OSError, ValueError, AttributeError):
        return ()
    return tuple(" ".join(str(e).rstrip(".?!").split()) for e in examples
                 if isinstance(e, str) and e.strip())


@functools.lru_cache(maxsize=16)
def _common_commands(lang: str) -> Tuple[str, ...]:
    try:
        with open(join(OWN_LOCALE, lang, COMMON_COMMANDS), encoding="utf-8") as f:
            return tuple(" ".join(line.split()) for line in f if line.strip() and not line.startswith("#"))
    except OSError:   # a language without the file: the intents alone
        return ()


@functools.lru_cache(maxsize=64)
def _intent_examples(locale: str, lang: str) -> Tuple[Tuple[str, ...], ...]:
    """Per intent file of `locale`/<lang>/ (any depth), its examples with the first
    alternative of each choice and without optional parts; lines with slots left out."""
    files = sorted(glob.glob(join(glob.escape(locale), glob.escape(lang), "**", "*.intent"),
                             recursive=True))
    intents = []
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                # a line with a slot would be a fragment ("change my location to"): its
                # slot-free neighbours carry the intent's words
                lines = [_expand(line) for line in f
                         if line.strip() and not line.startswith("#") and "{" not in line]
        except OSError as e:
            LOG.warning(f"vocabulary: cannot read {path}: {e}")
            continue
        intents.append(tuple(line for line in lines if line))
    return tuple(intents)


def _expand(template: str) -> str:
    """A template's plainest sentence: the first of each choice, optional words ("(please |)",
    "[x]") and slots left out; nested choices from the inside out."""
    text, previous = template, None
    while text != previous:
        previous, text = text, _CHOICE.sub(_first_choice, text)
    return " ".join(_OPTIONAL_OR_SLOT.sub(" ", text).split())


def _first_choice(match: "re.Match") -> str:
    options = match.group(1).split("|")
    return "" if any(not option.strip() for option in options) else options[0]


def _interleaved(intents: Iterable[Tuple[str, ...]]) -> List[str]:
    intents = list(intents)
    depth = max((len(examples) for examples in intents), default=0)
    return [examples[i] for i in range(depth) for examples in intents if i < len(examples)]


@functools.lru_cache(maxsize=16)
def _skill_folders(skill_ids: Tuple[str, ...]) -> List[str]:
    """The package folders of those of `skill_ids` installed here (found by their entry
    points, as ovos-core finds plugin skills, without importing them)."""
    wanted, folders = set(skill_ids), []
    for group in SKILL_GROUPS:
        for entry in metadata.entry_points(group=group):
            if entry.name not in wanted:
                continue
            try:
                spec = find_spec(entry.module.split(":")[0])
            except (ImportError, ValueError):
                continue
            if spec and spec.origin:
                folders.append(dirname(spec.origin))
                wanted.discard(entry.name)
    return folders
