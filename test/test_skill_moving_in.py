"""The skill and the old backend (#18), through the real ovos-core loader (ovoscope): at
its first start on a device where the REAL old backend (0.1.5, legacy_backends.py) left
its files, it offers to bring them over; "yes" imports through the skill's own store
(its server holds the data folder); "import my old backend" again brings nothing twice;
"back up the backend now" and "when was the last backup"."""
import os
import shutil
import tarfile
import threading

import pytest
from ovos_bus_client.message import Message

from legacy_backends import make_household
from ovos_skill_personal_backend.backend import backup, pairing
from ovos_skill_personal_backend.backend import config as config_module
from skill_harness import WAITING, Device, _dialog, reset_device, write_settings

# where the old backend's files go under the (sandboxed) XDG folders
OLD_FOLDERS = {"XDG_CONFIG_HOME": ".config/json_database", "XDG_CACHE_HOME": ".cache/json_database",
               "XDG_DATA_HOME": ".local/share/json_database"}


@pytest.fixture(scope="module")
def old_household(tmp_path_factory):
    """The old backend's files, made by the real 0.1.5, put where it keeps them on this
    device (the sandbox's XDG folders); taken away afterwards, so that no later skill
    load finds them."""
    household = make_household("0.1.5", tmp_path_factory.mktemp("old") / "home")
    placed = []
    for variable, folder in OLD_FOLDERS.items():
        target = os.path.join(os.environ[variable], "json_database")
        shutil.copytree(household.home / folder, target)
        placed.append(target)
    yield household
    for target in placed:
        shutil.rmtree(target)


@pytest.fixture(scope="module")
def device(old_household):
    """The skill loaded on that device. The import writes the old config's keys into the
    backend config file every skill load of this test process reads: put it back after."""
    config_path = config_module.default_config_path()
    before = open(config_path, "rb").read() if os.path.exists(config_path) else None
    reset_device()
    settings = write_settings()
    device = Device()
    yield device, settings
    device.stop()
    reset_device()
    if before is None:
        os.remove(config_path)
    else:
        with open(config_path, "wb") as f:
            f.write(before)


def test_first_start_offers_the_import_and_yes_brings_it_over(device, old_household):
    device, settings = device
    asked = device.wait_for_message(lambda m: m.msg_type == "speak" and _dialog(m) == "legacy.offer")
    assert asked is not None, "the skill did not offer to import the old backend"
    waiting = device.wait_for_message(lambda m: m.msg_type == WAITING)
    assert waiting is not None
    # the offer comes from the skill itself, not an utterance: the answer goes in the session
    # that asked (the default one, as the skill left it), and the skill speaks from its own
    # thread once the answer is in (no intent handles the answer: there is no turn to await)
    start = len(device.log)
    answer = Message("recognizer_loop:utterance", {"utterances": ["yes"], "lang": "en-US"},
                     {"session": waiting.context["session"], "source": "test",
                      "destination": ["skills"]})
    threading.Thread(target=device.croft.bus.emit, args=(answer,), daemon=True).start()
    done = device.wait_for_message(lambda m: m.msg_type == "speak" and _dialog(m) is not None,
                                   start=start, timeout=60)
    assert done is not None and _dialog(done) == "legacy.imported", done and done.data
    said = done.data["meta"]["data"]
    assert (said["devices"], said["recordings"], said["settings"]) == (2, 1, 2)
    store = device.skill.store
    for n, uuid in enumerate(old_household.uuids()):
        # each device's old token is accepted as it is, by the store the skill serves
        assert pairing.authenticate(store, old_household.token(n)) == uuid


def test_asking_again_brings_nothing_twice(device):
    device, _ = device
    talk = device.conversation()
    talk.say("import my old backend")
    assert talk.last_dialog() == "legacy.nothing.new"
    assert len(device.skill.store.devices.keys()) == 2


def test_back_up_now_and_when_was_the_last_backup(device):
    device, settings = device
    talk = device.conversation()
    folder = backup.default_folder(settings["data_path"])
    talk.say("when was the last backup")
    # the daily backup runs a day after the start: none yet
    assert talk.last_dialog() == "backup.none"
    talk.say("back up the backend now")
    assert talk.last_dialog() == "backup.done"
    (archive,) = backup.archives(folder)
    with tarfile.open(archive) as made:
        names = made.getnames()
    assert "manifest.json" in names and any(n.startswith("data/devices/") for n in names)
    assert backup.check(archive)["manifest"]["counts"]["devices"] == 2
    talk.say("when was the last backup")
    assert talk.last_dialog() == "backup.last"
