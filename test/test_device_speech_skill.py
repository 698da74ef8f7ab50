""""Keep my voice private": the skill points this device's stock speech plugins at its
backend's speech server with the device's own speech URL, and "use the usual speech
servers again" restores its mycroft.conf exactly. The real ovos-core skill loader
(ovoscope's MiniCroft), the real server; runs on both stacks."""
import pytest
import requests

from conftest import wait_until
from skill_harness import Device, read_settings, reset_device, user_config, write_settings, \
    write_user_config

# what the owner had configured before: another engine, with its own options
BEFORE = {"lang": "en-us",
          "stt": {"module": "ovos-stt-plugin-vosk", "ovos-stt-plugin-vosk": {"model": "small"}},
          "tts": {"module": "ovos-tts-plugin-piper", "fallback_module": "ovos-tts-plugin-mimic",
                  "ovos-tts-plugin-piper": {"voice": "alan-low"}}}


@pytest.fixture(scope="module")
def device():
    reset_device()
    write_user_config(BEFORE)
    write_settings(pairing="auto")
    dev = Device()
    yield dev
    dev.stop()
    reset_device()


def speech_url(conf: dict) -> str:
    return conf["tts"]["ovos-tts-plugin-server"]["host"]


def test_private_speech_on_and_off_by_voice(device):
    talk = device.conversation()
    talk.say("keep my voice private")
    assert talk.last_dialog() == "speech.needs.pairing"
    assert user_config()["stt"] == BEFORE["stt"]

    talk.say("pair this device")
    assert talk.last_dialog() == "paired"
    assert wait_until(lambda: device.skill.agent is not None)
    before = user_config()  # now also pointing at the backend

    talk.say("keep my voice private")
    assert talk.last_dialog() == "speech.private"
    conf = user_config()
    url = speech_url(conf)
    assert url.startswith(device.skill.local_url + "/speech/")
    assert conf["stt"] == {"module": "ovos-stt-plugin-server", "fallback_module": "",
                           "ovos-stt-plugin-vosk": {"model": "small"},
                           "ovos-stt-plugin-server": {"url": url + "/stt"}}
    assert conf["tts"]["module"] == "ovos-tts-plugin-server" and conf["tts"]["fallback_module"] == ""
    assert read_settings()["private_speech"] is True
    # the URL works as the stock TTS plugin uses it
    spoken = requests.get(f"{url}/v2/synthesize", params={"utterance": "hello", "lang": "en-us"},
                          timeout=60)
    assert spoken.status_code == 200 and spoken.content[:4] == b"RIFF"

    talk.say("keep my voice private")
    assert talk.last_dialog() == "speech.already.private"

    talk.say("use the usual speech servers again")
    assert talk.last_dialog() == "speech.public"
    assert user_config() == before
    assert read_settings()["private_speech"] is False
    assert requests.get(f"{url}/status", timeout=10).status_code == 401  # revoked

    talk.say("use the usual speech servers again")
    assert talk.last_dialog() == "speech.not.private"


def test_the_setting_does_the_same(device):
    skill = device.skill
    before = user_config()
    skill.settings["private_speech"] = True
    skill.on_settings_changed()
    assert user_config()["stt"]["module"] == "ovos-stt-plugin-server"
    assert requests.get(f"{speech_url(user_config())}/status", timeout=10).status_code == 200
    skill.settings["private_speech"] = False
    skill.on_settings_changed()
    assert user_config() == before
