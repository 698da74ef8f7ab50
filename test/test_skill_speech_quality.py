""""How good is my speech recognition": the skill asks the backend's STT engine (in its
worker process) which engine and model answer for the device's language, and says why
when it is the fallback. The real ovos-core loader (ovoscope), the real worker."""
import json
import os

import pytest

from skill_harness import Device, reset_device, settings_path, write_settings


@pytest.fixture
def talk_with(tmp_path):
    devices = []

    def start(stt: dict = None):
        reset_device()
        settings = write_settings(pairing="auto")
        if stt is not None:  # the backend config the skill's server reads
            config = os.path.join(os.environ["XDG_CONFIG_HOME"], "ovos_backend", "ovos_backend.conf")
            os.makedirs(os.path.dirname(config), exist_ok=True)
            with open(config, "w") as f:
                json.dump({"stt": stt}, f)
            devices_config.append(config)
        assert os.path.exists(settings_path()) and settings["pairing"] == "auto"
        device = Device()
        devices.append(device)
        return device.conversation()

    devices_config = []
    yield start
    for device in devices:
        device.stop()
    for path in devices_config:
        os.remove(path)
    reset_device()


def test_whisper_by_default(talk_with):
    talk = talk_with()
    talk.say("how good is my speech recognition")
    assert talk.last_dialog() == "speech.quality.good"
    assert talk.last_data()["model"] == "tiny.en"


def test_the_fallback_says_why(talk_with, tmp_path):
    # no Whisper model can be had: none installed under this name, no download
    talk = talk_with({"english_model": "base.en", "download": False})
    talk.say("how well do you understand me")
    assert talk.last_dialog() == "speech.quality.fallback"
    assert "base.en" in talk.last_data()["reason"]
