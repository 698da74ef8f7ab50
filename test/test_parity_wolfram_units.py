"""Wolfram|Alpha `units` is case-insensitive: a device sending `Metric` gets metric
answers (it got imperial ones). Real client and server, the stand-in upstream of
test_weather_wolfram.py recording what Wolfram would receive."""
import pytest
import requests

from ovos_skill_personal_backend.backend import create_app
from standins import StandIn, paired_client
from test_weather_wolfram import WOLFRAM_KEY, wolfram_answers


@pytest.fixture
def wolfram():
    with StandIn(wolfram_answers) as stand_in:
        yield stand_in


@pytest.fixture
def app(config, store, wolfram):
    config["microservices"].update(wolfram_key=WOLFRAM_KEY, wolfram_url=wolfram.url, timeout=2.0)
    return create_app(config, store)


@pytest.fixture
def device(store, config, live_server, tmp_path):
    with paired_client(store, config, live_server, tmp_path) as client:
        yield client


def ask(device, path: str, **params) -> requests.Response:
    return requests.get(f"{device.backend_url}/v1/{path}", params=params, timeout=10,
                        headers={"Authorization": f"Bearer {device.login['accessToken']}"})


@pytest.mark.parametrize("units", ["Metric", "METRIC", " metric "])
def test_metric_in_any_case_is_metric(device, wolfram, units):
    assert device.wolfram_spoken("six times seven", units=units, lat_lon=(1, 2)) == \
        "The answer to six times seven is 42"
    assert ask(device, "wolframAlphaFull", input="pi", units=units).status_code == 200
    assert [r.query["units"] for r in wolfram.requests] == ["metric", "metric"]


@pytest.mark.parametrize("units", ["Imperial", "NonMetric"])
def test_anything_else_is_each_api_s_non_metric(device, wolfram, units):
    ask(device, "wolframAlphaSpoken", i="pi", units=units)
    ask(device, "wolframAlphaFull", input="pi", units=units)
    assert [r.query["units"] for r in wolfram.requests] == ["imperial", "nonmetric"]


def test_blank_units_fall_back_to_the_device_s(device, wolfram, store):
    store.devices.update(device.uuid, lambda record: {**record, "system_unit": "imperial"})
    ask(device, "wolframAlphaSpoken", i="pi", units="  ")
    assert wolfram.requests[0].query["units"] == "imperial"
