"""The old backend's admin-config keys (#18, item 5): the old manager UI reads them from
GET /admin/config and posts the whole config back with every edit. Posting them back as
shown is no change; changing one is refused, naming the key and why: never a 200 for a
change that was not stored."""
import json

import pytest
import requests

from conftest import ADMIN_KEY

HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def config_path(tmp_path):
    path = tmp_path / "ovos_backend.conf"
    path.write_text(json.dumps({"lang": "en-us"}))
    return path


@pytest.fixture
def app(config, store, config_path):
    from ovos_skill_personal_backend.backend import create_app
    return create_app(config, store, config_path=str(config_path))


def shown(server) -> dict:
    answer = requests.get(f"{server.url}/v1/admin/config", headers=HEADERS, timeout=10)
    answer.raise_for_status()
    return answer.json()


def post(server, delta: dict) -> requests.Response:
    return requests.post(f"{server.url}/v1/admin/config", json={"config": delta},
                         headers=HEADERS, timeout=10)


@pytest.mark.parametrize("delta, key", [
    ({"server": {"skip_auth": True}}, "server.skip_auth"),
    ({"server": {"geolocate": True}}, "server.geolocate"),
    ({"server": {"override_location": False}}, "server.override_location"),
    ({"server": {"database": "sqlite:///other.db"}}, "server.database"),
    ({"stt_servers": ["https://stt.example.com/stt"]}, "stt_servers"),
    ({"default_values": {"ww_id": "hey_jarvis"}}, "default_values.ww_id"),
    ({"default_values": {"voice_id": "ovos-tts-plugin-mimic_en-us_ap"}}, "default_values.voice_id"),
])
def test_a_change_of_an_old_key_is_refused_naming_it(live_server, config_path, delta, key):
    before = config_path.read_text()
    answer = post(live_server, {**delta, "time_format": "half"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith(f"{key} cannot be changed on this backend: ")
    assert config_path.read_text() == before  # the other change in the same post neither


def test_the_whole_config_posted_back_with_one_change_works(live_server, config_path):
    whole = shown(live_server)
    whole["date_format"] = "MDY"
    answer = post(live_server, whole)
    assert answer.status_code == 200, answer.text
    assert answer.json()["changed"] == ["date_format"]
    assert json.loads(config_path.read_text()) == {"lang": "en-us", "date_format": "MDY"}
    assert shown(live_server)["date_format"] == "MDY"
