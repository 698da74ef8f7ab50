"""`GET /v1/geolocation?location=` through the real client's `geolocation_get`
(api-contract §6.2), against the real server, the shipped gazetteer and, for the
optional online fallback, a stand-in Nominatim server on 127.0.0.1.
"""
import pytest
import requests

from conftest import make_config
from helpers import bearer, pair, restore_identity, serve  # noqa: F401
from standins import StandIn, json_reply, nothing_listening

pytestmark = pytest.mark.usefixtures("restore_identity")


@pytest.fixture
def device(live_server, tmp_path):
    return pair(live_server.url, tmp_path / "identity2.json")


def test_lookup_answers_the_nested_ovos_shape(device):
    location = device.geolocation_get("Lisbon")
    assert location["city"]["name"] == "Lisbon"
    assert location["city"]["state"]["country"] == {"code": "PT", "name": "Portugal"}
    assert location["coordinate"]["latitude"] == pytest.approx(38.72, abs=0.05)
    assert location["coordinate"]["longitude"] == pytest.approx(-9.15, abs=0.05)
    # the client computes a timezone itself only when the answer has none: ours has one
    assert location["timezone"] == {"code": "Europe/Lisbon", "name": "Europe/Lisbon",
                                    "offset": 0, "dstOffset": 3600000}
    assert "Portugal" in location["address"]


def test_qualified_names_pick_the_right_place(device):
    texas = device.geolocation_get("Paris, Texas")
    assert texas["city"]["state"]["country"]["code"] == "US"
    assert texas["timezone"]["code"] == "America/Chicago"
    assert device.geolocation_get("Paris")["timezone"]["code"] == "Europe/Paris"


def test_wire_shape_and_errors(device, live_server):
    url = f"{live_server.url}/v1/geolocation"
    ok = requests.get(url, params={"location": "Tokyo"}, headers=bearer(device.access_token),
                      timeout=10)
    assert ok.status_code == 200 and ok.headers["Content-Type"] == "application/json"
    assert list(ok.json()) == ["data"] and ok.json()["data"]["timezone"]["code"] == "Asia/Tokyo"

    for params in ({}, {"location": "   "}, {"location": "x" * 201}):
        bad = requests.get(url, params=params, headers=bearer(device.access_token), timeout=10)
        assert bad.status_code == 400 and "location" in bad.json()["error"]

    missing = requests.get(url, params={"location": "Qwxzqwxz"},
                           headers=bearer(device.access_token), timeout=10)
    assert missing.status_code == 404
    assert missing.json() == {"error": "no place found for 'Qwxzqwxz'"}

    anonymous = requests.get(url, params={"location": "Lisbon"}, timeout=10)
    assert anonymous.status_code == 401


def test_no_match_fails_in_the_client_without_a_crash_on_the_server(device):
    # the client indexes ["data"] without checking the status: a clear 404 body still
    # ends in an exception there, as `{"data": null}` would (TypeError) and as the
    # client's own offline geocoder does on no match (IndexError)
    with pytest.raises(KeyError):
        device.geolocation_get("Qwxzqwxz")


# the online fallback -------------------------------------------------------------------

HAMLET = {"lat": "41.1579", "lon": "-8.6291", "name": "Vila Nenhures",
          "display_name": "Vila Nenhures, Porto, Portugal",
          "address": {"village": "Vila Nenhures", "state": "Porto", "ISO3166-2-lvl4": "PT-13",
                      "country": "Portugal", "country_code": "pt"},
          "extratags": {"timezone": "Europe/Lisbon"}}
# no timezone tag: the time zone comes from the same-named gazetteer city
SPRINGFIELD = {"lat": "39.80", "lon": "-89.64", "name": "Springfield Annex",
               "display_name": "Springfield Annex, Illinois, United States",
               "address": {"town": "Springfield", "state": "Illinois",
                           "ISO3166-2-lvl4": "US-IL", "country": "United States",
                           "country_code": "us"}}


PLACES = {"Vila Nenhures": [HAMLET], "Springfield Annex": [SPRINGFIELD]}


@pytest.fixture
def nominatim():
    """A stand-in Nominatim `/search` answering canned jsonv2 results."""
    with StandIn(lambda request: json_reply(PLACES.get(request.query.get("q"), []))) as server:
        yield server


def _fallback_server(tmp_path, url: str, enabled: bool = True):
    config = make_config(tmp_path / "data")
    config["geolocation"] = {"online_fallback": enabled, "nominatim_url": url}
    return serve(config)


def test_online_fallback_resolves_what_the_gazetteer_lacks(tmp_path, nominatim):
    with _fallback_server(tmp_path, nominatim.url + "/search") as server:
        device = pair(server.url, tmp_path / "identity2.json")
        location = device.geolocation_get("Vila Nenhures")
        assert location["address"] == "Vila Nenhures, Porto, Portugal"
        assert location["city"]["name"] == "Vila Nenhures"
        assert location["city"]["state"] == {"code": "13", "name": "Porto",
                                             "country": {"code": "PT", "name": "Portugal"}}
        assert location["coordinate"] == {"latitude": 41.1579, "longitude": -8.6291}
        assert location["timezone"]["code"] == "Europe/Lisbon"
        assert location["timezone"]["dstOffset"] == 3600000

        springfield = device.geolocation_get("Springfield Annex")
        assert springfield["timezone"]["code"] == "America/Chicago"

        # names the gazetteer knows never leave the machine; answers are cached
        assert device.geolocation_get("Lisbon")["city"]["name"] == "Lisbon"
        device.geolocation_get("Vila Nenhures")
        assert [r.query["q"] for r in nominatim.requests] == ["Vila Nenhures", "Springfield Annex"]
        first = nominatim.requests[0]
        assert first.path == "/search"
        assert first.headers["User-Agent"].startswith("ovos-personal-backend")
        assert (first.query["format"], first.query["limit"]) == ("jsonv2", "1")
        # nothing of the device's identity goes out
        assert "Authorization" not in first.headers and "Device" not in first.headers

        miss = requests.get(f"{server.url}/v1/geolocation", params={"location": "Nowhere At All"},
                            headers=bearer(device.access_token), timeout=10)
        assert miss.status_code == 404 and "Nowhere At All" in miss.json()["error"]


def test_fallback_is_off_unless_configured(tmp_path, nominatim):
    with _fallback_server(tmp_path, nominatim.url + "/search", enabled=False) as server:
        device = pair(server.url, tmp_path / "identity2.json")
        answer = requests.get(f"{server.url}/v1/geolocation", params={"location": "Vila Nenhures"},
                              headers=bearer(device.access_token), timeout=10)
        assert answer.status_code == 404
    assert nominatim.requests == []


def test_unreachable_fallback_fails_gracefully(tmp_path):
    with _fallback_server(tmp_path, nothing_listening() + "/search") as server:
        device = pair(server.url, tmp_path / "identity2.json")
        answer = requests.get(f"{server.url}/v1/geolocation", params={"location": "Vila Nenhures"},
                              headers=bearer(device.access_token), timeout=20)
        assert answer.status_code == 502
        assert "online geocoder" in answer.json()["error"]
        # the offline gazetteer still answers
        assert device.geolocation_get("Lisbon")["city"]["name"] == "Lisbon"
