"""Weather (OWM) and Wolfram|Alpha proxies, driven by the real ovos-backend-client against the
real server, with stand-in upstreams on 127.0.0.1 that record what they receive."""
import os
import time

import pytest
import requests

from ovos_skill_personal_backend.backend import create_app, devices
from standins import StandIn, json_reply, nothing_listening, paired_client, text_reply

OWM_KEY = "owm-key-0123456789abcdef"
WOLFRAM_KEY = "WOLF-KEY-42"

ONECALL = {
    "lat": 38.5, "lon": -9.1, "timezone": "Europe/Lisbon", "timezone_offset": 3600,
    "current": {"dt": 1, "temp": 21.5, "feels_like": 20.9, "dew_point": 9.1, "wind_speed": 3.2,
                "weather": [{"id": 800, "main": "Clear", "description": "clear sky", "icon": "01d"}],
                "rain": {"1h": 0.2}},
    "hourly": [{"dt": 2, "temp": 22.0, "feels_like": 21.0, "wind_gust": 5.5}],
    "daily": [{"dt": 3, "temp": {"min": 12.0, "max": 24.0}, "feels_like": {"day": 23.0},
               "moon_phase": 0.5}],
}
CURRENT = {"coord": {"lat": 38.5, "lon": -9.1}, "main": {"temp": 21.5, "feels_like": 20.9,
                                                          "temp_min": 19.0}, "name": "Lisbon"}
FORECAST = {"cnt": 1, "list": [{"dt": 4, "main": {"temp": 20.0, "feels_like": 19.0}}]}
DAILY = {"cnt": 1, "list": [{"dt": 5, "temp": {"day": 22.0}, "feels_like": {"day": 21.0}}]}
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x00\x00\x00\x00\x00"
XML = ("<?xml version='1.0' encoding='UTF-8'?>"
       "<queryresult success='true'><pod title='Result'/></queryresult>")


def owm_answers(request):
    answers = {"/data/2.5/onecall": ONECALL, "/data/2.5/weather": CURRENT,
               "/data/2.5/forecast": FORECAST, "/data/2.5/forecast/daily": DAILY}
    if request.path in answers:
        return json_reply(answers[request.path])
    return json_reply({"cod": 404, "message": "not found"}, 404)


def wolfram_answers(request):
    if request.path == "/v1/spoken":
        return text_reply(f"The answer to {request.query['i']} is 42")
    if request.path == "/v1/simple":
        return text_reply(GIF, content_type="image/gif")
    if request.path == "/v2/query" and request.query.get("output") == "json":
        return json_reply({"queryresult": {"success": True, "pods": [{"title": "Result"}]}})
    if request.path == "/v2/query":
        return text_reply(XML, content_type="text/xml;charset=utf-8")
    return text_reply("no such API", 404)


@pytest.fixture
def owm():
    with StandIn(owm_answers) as stand_in:
        yield stand_in


@pytest.fixture
def wolfram():
    with StandIn(wolfram_answers) as stand_in:
        yield stand_in


@pytest.fixture
def app(config, store, owm, wolfram):
    config["microservices"].update(owm_key=OWM_KEY, owm_url=owm.url + "/data/2.5",
                                   wolfram_key=WOLFRAM_KEY, wolfram_url=wolfram.url, timeout=2.0)
    return create_app(config, store)


@pytest.fixture
def device(store, config, live_server, tmp_path):
    with paired_client(store, config, live_server, tmp_path) as client:
        yield client


def raw_get(device, path, **params):
    """A device request outside the client, to see statuses and headers."""
    return requests.get(f"{device.backend_url}/v1/{path}", params=params, timeout=10,
                        headers={"Authorization": f"Bearer {device.login['accessToken']}"})


def assert_device_credentials_not_forwarded(device, request):
    token = device.login["accessToken"]
    assert "Authorization" not in request.headers and "Device" not in request.headers
    assert token not in request.raw_target
    assert all(token not in value for value in request.headers.values())
    assert device.uuid not in request.raw_target


# OpenWeatherMap -------------------------------------------------------------------------------

def test_onecall_forwards_query_and_key_and_is_camel_cased(device, owm):
    data = device.owm_get_weather(lat_lon=(38.5, -9.1), lang="pt-br", units="imperial")

    assert data["timezoneOffset"] == 3600
    assert data["current"]["feelsLike"] == 20.9 and data["current"]["dewPoint"] == 9.1
    assert data["current"]["weather"][0]["description"] == "clear sky"
    assert data["current"]["rain"] == {"1h": 0.2}
    assert data["hourly"][0]["windGust"] == 5.5  # dicts inside lists too
    assert data["daily"][0]["temp"]["max"] == 24.0 and data["daily"][0]["moonPhase"] == 0.5
    assert "feels_like" not in data["current"]
    [request] = owm.requests
    assert request.path == "/data/2.5/onecall"
    assert request.query == {"lat": "38.5", "lon": "-9.1", "units": "imperial", "lang": "pt_br",
                             "appid": OWM_KEY}
    assert_device_credentials_not_forwarded(device, request)


def test_current_hourly_and_daily_keep_the_owm_shape(device, owm):
    assert device.owm_get_current(lat_lon=(1, 2)) == CURRENT
    assert device.owm_get_hourly(lat_lon=(1, 2)) == FORECAST
    assert device.owm_get_daily(lat_lon=(1, 2)) == DAILY
    assert [r.path for r in owm.requests] == ["/data/2.5/weather", "/data/2.5/forecast",
                                              "/data/2.5/forecast/daily"]
    assert all(r.query["lang"] == "en" and r.query["units"] == "metric" for r in owm.requests)


def test_missing_parameters_come_from_the_device(device, owm, store):
    devices.update(store, device.uuid, {"system_unit": "imperial", "lang": "cs-cz", "location": {
        "city": {"name": "Lisbon"}, "coordinate": {"latitude": 38.7223, "longitude": -9.13934},
        "timezone": {"code": "Europe/Lisbon"}}})

    response = raw_get(device, "owm/weather")

    assert response.status_code == 200 and response.json() == CURRENT
    assert owm.requests[0].query == {"lat": "38.7223", "lon": "-9.1393", "units": "imperial",
                                     "lang": "cz", "appid": OWM_KEY}


def test_a_second_identical_call_is_answered_from_the_cache(device, owm):
    first = device.owm_get_current(lat_lon=(38.5, -9.1))
    second = device.owm_get_current(lat_lon=(38.5, -9.1))
    assert first == second == CURRENT
    assert len(owm.requests) == 1

    device.owm_get_current(lat_lon=(40.0, -8.0))  # another place is another question
    device.owm_get_weather(lat_lon=(38.5, -9.1))  # another endpoint too
    assert len(owm.requests) == 3


def test_the_cache_survives_a_restart_and_holds_no_key(device, owm, config, store):
    device.owm_get_current(lat_lon=(38.5, -9.1))
    restarted = create_app(config, store).test_client()

    response = restarted.get("/v1/owm/weather", query_string={"lat": 38.5, "lon": -9.1},
                             headers={"Authorization": f"Bearer {device.login['accessToken']}"})

    assert response.status_code == 200 and response.json == CURRENT
    assert len(owm.requests) == 1
    cache_file = store.folder("cache") + "/upstream.sqlite"
    assert OWM_KEY.encode() not in open(cache_file, "rb").read()


def test_a_stale_answer_is_served_while_the_upstream_fails(device, owm, config):
    config["microservices"]["cache_seconds"]["weather"] = 1
    assert device.owm_get_current(lat_lon=(38.5, -9.1)) == CURRENT
    time.sleep(1.2)  # let the cached answer expire

    owm.handler = lambda request: json_reply({"message": "internal error"}, 500)
    assert device.owm_get_current(lat_lon=(38.5, -9.1)) == CURRENT
    assert len(owm.requests) == 2  # it did try

    owm.stop()  # now unreachable altogether
    assert device.owm_get_current(lat_lon=(38.5, -9.1)) == CURRENT
    # nothing cached for this place: the failure shows
    response = raw_get(device, "owm/weather", lat=1, lon=1)
    assert response.status_code == 502 and "cannot reach OpenWeatherMap" in response.json()["error"]


def test_without_a_key_the_service_is_off_with_503(device, owm, wolfram, config):
    config["microservices"]["owm_key"] = ""
    config["microservices"]["wolfram_key"] = ""

    assert "not configured" in device.owm_get_current(lat_lon=(1, 2))["error"]
    assert "not configured" in device.wolfram_full_results("pi", lat_lon=(1, 2))["error"]
    assert raw_get(device, "owm/onecall").status_code == 503
    response = raw_get(device, "wolframAlphaSpoken", i="pi")
    assert response.status_code == 503 and "microservices.wolfram_key" in response.json()["error"]
    assert owm.requests == [] and wolfram.requests == []
    assert not os.path.exists(os.path.join(config["data_path"], "cache"))  # nothing opened


def test_the_memory_cache_works_and_writes_nothing(owm, config, store, device):
    config["microservices"]["cache"] = "memory"
    client = create_app(config, store).test_client()
    headers = {"Authorization": f"Bearer {device.login['accessToken']}"}
    for _ in range(2):
        response = client.get("/v1/owm/onecall", query_string={"lat": 1, "lon": 2}, headers=headers)
        assert response.status_code == 200 and response.json["timezoneOffset"] == 3600
    assert len(owm.requests) == 1
    assert not os.path.exists(os.path.join(config["data_path"], "cache"))


def test_an_unreachable_upstream_is_a_502(device, config):
    config["microservices"]["owm_url"] = nothing_listening()
    response = raw_get(device, "owm/onecall", lat=1, lon=2)
    assert response.status_code == 502
    assert "cannot reach OpenWeatherMap" in response.json()["error"]
    assert OWM_KEY not in response.text


def test_a_slow_upstream_is_a_504(device, owm, config):
    config["microservices"]["timeout"] = 0.3
    owm.delay = 1.0
    response = raw_get(device, "owm/weather", lat=1, lon=2)
    assert response.status_code == 504
    assert "did not answer within 0.3 s" in response.json()["error"]


@pytest.mark.parametrize("status, body, expected, words", [
    (401, {"cod": 401, "message": f"Invalid API key {OWM_KEY}"}, 502, "refused the configured key"),
    (429, {"cod": 429, "message": "limit"}, 429, "quota exceeded"),
    (404, {"cod": "404", "message": "city not found"}, 404, "city not found"),
    (400, {"cod": "400", "message": "wrong latitude"}, 400, "wrong latitude"),
    (503, {"message": "maintenance"}, 502, "failed (HTTP 503"),
])
def test_upstream_refusals_are_mapped(device, owm, status, body, expected, words):
    owm.handler = lambda request: json_reply(body, status)
    response = raw_get(device, "owm/weather", lat=1, lon=2)
    assert response.status_code == expected
    assert words in response.json()["error"]
    assert OWM_KEY not in response.text  # even when the upstream echoes it


@pytest.mark.parametrize("path, params, words", [
    ("owm/weather", {"lat": "north"}, "lat must be a number"),
    ("owm/weather", {"lat": 91}, "lat must be between"),
    ("owm/weather", {"units": "kelvin"}, "units must be one of"),
    ("owm/weather", {"exclude": "a;b"}, "exclude must be"),
    ("owm/history", {}, "unknown weather endpoint"),
    ("wolframAlphaSpoken", {}, "the question is missing"),
    ("wolframAlphaFull", {"input": "x" * 1001}, "longer than 1000"),
])
def test_bad_device_requests_are_400_or_404_and_go_nowhere(device, owm, wolfram, path, params, words):
    response = raw_get(device, path, **params)
    assert response.status_code in (400, 404)
    assert words in response.json()["error"]
    assert owm.requests == [] and wolfram.requests == []


def test_only_paired_devices_may_ask(live_server, owm, wolfram):
    for path in ("owm/onecall", "wolframAlphaSpoken?i=pi", "wa?input=pi"):
        response = requests.get(f"{live_server.url}/v1/{path}", timeout=10,
                                headers={"Authorization": "Bearer not-a-token"})
        assert response.status_code == 401
    assert owm.requests == [] and wolfram.requests == []


# Wolfram|Alpha ---------------------------------------------------------------------------------

def test_spoken_answer_as_text_with_key_units_and_location(device, wolfram):
    answer = device.wolfram_spoken("six times seven", units="nonmetric", lat_lon=(38.5, -9.1))

    assert answer == "The answer to six times seven is 42"
    [request] = wolfram.requests
    assert request.path == "/v1/spoken"
    assert request.query == {"i": "six times seven", "geolocation": "38.5,-9.1",
                             "units": "imperial", "appid": WOLFRAM_KEY}
    assert_device_credentials_not_forwarded(device, request)


def test_spoken_no_answer_passes_through_for_the_skill_to_recognise(device, wolfram):
    wolfram.handler = lambda request: text_reply("No spoken result available", 501)
    assert device.wolfram_spoken("blah", lat_lon=(1, 2)) == "No spoken result available"
    response = raw_get(device, "wolframAlphaSpoken", i="blah blah")
    assert response.status_code == 501 and response.text == "No spoken result available"


def test_simple_answer_is_the_image_with_its_content_type(device, wolfram):
    response = raw_get(device, "wolframAlphaSimple", i="a cat", geolocation="1,2")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/gif"
    assert response.content == GIF
    assert device.wolfram_simple("a cat", lat_lon=(1, 2)) == GIF.decode(errors="replace")
    assert len(wolfram.requests) == 1  # the second ask came from the cache


def test_full_results_are_json_and_a_device_cannot_swap_the_key(device, wolfram):
    data = device.wolfram_full_results("pi", units="metric", lat_lon=(1.5, 2.5),
                                       optional_params={"appid": "stolen", "podstate": "More",
                                                        "output": "xml", "evil": "1"})

    assert data == {"queryresult": {"success": True, "pods": [{"title": "Result"}]}}
    [request] = wolfram.requests
    assert request.path == "/v2/query"
    assert request.query == {"input": "pi", "units": "metric", "mode": "Default",
                             "format": "image,plaintext", "geolocation": "1.5,2.5",
                             "podstate": "More", "output": "json", "appid": WOLFRAM_KEY}


@pytest.mark.parametrize("name", ["input", "i"])
def test_old_mycroft_wa_gets_v2_xml_as_text_xml(device, wolfram, store, name):
    response = raw_get(device, "wa", **{name: "population of Lisbon"})

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/xml")
    assert response.text == XML
    [request] = wolfram.requests
    location = store.devices.get(device.uuid)["location"]["coordinate"]
    assert request.query == {"input": "population of Lisbon", "output": "xml", "units": "metric",
                             "geolocation": f"{location['latitude']},{location['longitude']}",
                             "appid": WOLFRAM_KEY}


def test_wolfram_refusing_the_key_is_a_502(device, wolfram):
    wolfram.handler = lambda request: text_reply("Error 1: Invalid appid", 403)
    response = raw_get(device, "wolframAlphaSpoken", i="pi")
    assert response.status_code == 502
    assert "Wolfram|Alpha refused the configured key" in response.json()["error"]
