"""The device sync routes (issue "the skill keeps its device in sync"), through Flask's
test client and the real waitress server, on the real store:

* conditional answers: the polled device routes send a strong ETag and answer a
  matching If-None-Match with a 304 without a body;
* GET /skill/sync (every skill's values with gid and update time) and PATCH /skill/sync
  (merge some values into where the device's settings live);
* what a device is no longer sent: skills its manifest dropped, values of fields the
  skill's settingsmeta dropped (both kept in the store).
"""
import pytest
import requests

from ovos_skill_personal_backend.backend import devices, pairing, skill_settings

SKILL, OTHER = "skill-weather.openvoiceos", "skill-timer.openvoiceos"
POLLED = ["", "/setting", "/location", "/skill", "/skill/settings", "/skill/sync"]


def _meta(**fields) -> dict:
    """A settingsmeta with one text field per keyword, its value the default."""
    return {"sections": [{"name": "Options", "fields": [
        {"name": name, "type": "text", "label": name, "value": value} for name, value in fields.items()]}]}


class Device:
    """A paired device calling its routes through the test client."""

    def __init__(self, client, store, config):
        login = pairing.pair_directly(store, config)
        self.client, self.uuid = client, login["uuid"]
        self.headers = {"Authorization": f"Bearer {login['accessToken']}"}

    def get(self, path: str, **headers):
        return self.client.get(f"/v1/device/{self.uuid}{path}", headers={**self.headers, **headers})

    def send(self, method: str, path: str, body):
        return self.client.open(f"/v1/device/{self.uuid}{path}", method=method, json=body,
                                headers=self.headers)

    def gid(self, skill_id: str) -> str:
        return f"@{self.uuid}|{skill_id}"

    def upload(self, skill_id: str, **values):
        """PUT /skill (v1), as ovos-workshop skills upload their settings."""
        answer = self.send("PUT", "/skill", {"skill_gid": self.gid(skill_id), "skillMetadata": _meta(**values)})
        assert answer.status_code == 200, answer.json

    def push(self, skill_id: str, settings, **body):
        return self.send("PATCH", "/skill/sync", {"skill_id": skill_id, "settings": settings, **body})

    def manifest(self, *skill_ids: str):
        answer = self.send("PUT", "/skillJson", {"skills": [
            {"name": s, "skill_gid": self.gid(s)} for s in skill_ids], "blacklist": []})
        assert answer.status_code == 200


@pytest.fixture
def device(client, store, config):
    return Device(client, store, config)


# conditional answers ----------------------------------------------------------------------

@pytest.mark.parametrize("path", POLLED)
def test_polled_routes_answer_304_when_the_etag_matches(device, path):
    device.upload(SKILL, units="metric")
    first = device.get(path)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and first.data
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 10  # strong, not W/"..."
    assert device.get(path).headers["ETag"] == etag  # the same body, the same tag

    for asked in (etag, f'"stale", {etag}', f"W/{etag}", "*"):
        answer = device.get(path, **{"If-None-Match": asked})
        assert answer.status_code == 304, asked
        assert answer.data == b"" and answer.headers["ETag"] == etag
        assert "Content-Type" not in answer.headers
    stale = device.get(path, **{"If-None-Match": '"stale"'})
    assert stale.status_code == 200 and stale.data == first.data


@pytest.mark.parametrize("path, change", [
    ("/setting", lambda store, uuid: devices.update(store, uuid, {"date_format": "MDY"})),
    ("/skill/sync", lambda store, uuid: skill_settings.shared_put(store, SKILL, settings={"units": "x"})),
])
def test_a_change_gives_a_new_etag(device, store, path, change):
    device.upload(SKILL, units="metric")
    etag = device.get(path).headers["ETag"]
    change(store, device.uuid)
    answer = device.get(path, **{"If-None-Match": etag})
    assert answer.status_code == 200 and answer.headers["ETag"] != etag


def test_304_through_the_real_server(live_server, store, config):
    login = pairing.pair_directly(store, config)
    url = f"{live_server.url}/v1/device/{login['uuid']}/setting"
    headers = {"Authorization": f"Bearer {login['accessToken']}"}
    etag = requests.get(url, headers=headers, timeout=10).headers["ETag"]
    answer = requests.get(url, headers={**headers, "If-None-Match": etag}, timeout=10)
    assert answer.status_code == 304 and answer.content == b"" and answer.headers["ETag"] == etag


# GET /skill/sync --------------------------------------------------------------------------

def test_sync_view_has_every_skill_with_its_gid_values_and_update_time(device, store):
    device.upload(SKILL, units="metric", city="Lisbon")
    device.upload(OTHER, sound="bell")
    skill_settings.device_put(store, device.uuid, OTHER, settings={"sound": "gong"})  # its own copy

    answer = device.get("/skill/sync")
    assert answer.status_code == 200
    skills = answer.json["skills"]
    assert skills == {
        SKILL: {"gid": device.gid(SKILL), "settings": {"units": "metric", "city": "Lisbon"},
                "updated_at": store.shared_skills.get(SKILL)["updated_at"]},
        OTHER: {"gid": device.gid(OTHER), "settings": {"sound": "gong"},
                "updated_at": store.devices.get(device.uuid)["skills"][OTHER]["updated_at"]}}
    # the same values as the v2 route, keyed by skill id instead of gid
    assert {e["gid"]: e["settings"] for e in skills.values()} == device.get("/skill/settings").json


# PATCH /skill/sync ------------------------------------------------------------------------

def test_push_merges_only_the_given_values_and_moves_updated_at_on_change_only(device, store):
    device.upload(SKILL, units="metric", city="Lisbon")
    before = store.shared_skills.get(SKILL)

    answer = device.push(SKILL, {"city": "Porto"})
    assert answer.status_code == 200
    assert answer.json["skill_id"] == SKILL and answer.json["gid"] == device.gid(SKILL)
    assert answer.json["settings"] == {"units": "metric", "city": "Porto"}
    stored = store.shared_skills.get(SKILL)
    assert stored["settings"] == answer.json["settings"] and stored["meta"] == before["meta"]
    assert answer.json["updated_at"] == stored["updated_at"] > before["updated_at"]

    again = device.push(SKILL, {"city": "Porto"})
    assert again.json == answer.json and store.shared_skills.get(SKILL) == stored


def test_push_creates_the_record_and_keeps_the_gid(device, store):
    gid = f"{SKILL}|main"
    answer = device.push(SKILL, {"units": "imperial", "hourly": True}, gid=gid)
    assert answer.status_code == 200
    assert answer.json["gid"] == gid and answer.json["settings"] == {"units": "imperial", "hourly": True}
    assert store.shared_skills.get(SKILL)["settings"] == {"units": "imperial", "hourly": True}
    assert device.get("/skill/settings").json == {gid: {"units": "imperial", "hourly": True}}


def test_push_goes_where_the_device_settings_live(client, store, config, device):
    isolated = Device(client, store, config)
    devices.update(store, isolated.uuid, {"isolated_skills": True})
    device.upload(SKILL, units="metric")
    isolated.upload(SKILL, units="metric")

    assert isolated.push(SKILL, {"units": "kelvin"}).status_code == 200
    assert store.shared_skills.get(SKILL)["settings"] == {"units": "metric"}
    assert device.get("/skill/sync").json["skills"][SKILL]["settings"] == {"units": "metric"}

    assert device.push(SKILL, {"units": "imperial"}).status_code == 200
    assert store.shared_skills.get(SKILL)["settings"] == {"units": "imperial"}
    assert isolated.get("/skill/sync").json["skills"][SKILL]["settings"] == {"units": "kelvin"}


@pytest.mark.parametrize("body, message", [
    ({"skill_id": SKILL, "settings": {"_token": "secret", "units": "x"}}, "private"),
    ({"skill_id": SKILL, "settings": ["units", "x"]}, "settings must be an object"),
    ({"skill_id": SKILL, "settings": "units=x"}, "settings must be an object"),
    ({"skill_id": SKILL}, "settings must be an object"),
    ({"skill_id": SKILL, "settings": {"": 1}}, "setting names"),
    ({"settings": {"units": "x"}}, "skill_id"),
    ({"skill_id": "", "settings": {"units": "x"}}, "skill_id"),
    ({"skill_id": 7, "settings": {"units": "x"}}, "skill_id"),
    ({"skill_id": "x" * 201, "settings": {"units": "x"}}, "skill_id"),
    ({"skill_id": f"@abc|{SKILL}", "settings": {"units": "x"}}, "bare skill id"),
    ({"skill_id": SKILL, "gid": f"@abc|{OTHER}", "settings": {"units": "x"}}, "another skill"),
    ({"skill_id": SKILL, "gid": ["a"], "settings": {"units": "x"}}, "skill_gid"),
    ({"skill_id": SKILL, "settings": {"units": "x"}, "display_name": "x"}, "expected"),
    ([SKILL, {"units": "x"}], "expected"),
])
def test_push_refuses_bad_input_with_a_json_400(device, store, body, message):
    answer = device.send("PATCH", "/skill/sync", body)
    assert answer.status_code == 400 and message in answer.json["error"]
    assert store.shared_skills.all() == {} and store.devices.get(device.uuid)["skill_gids"] == {}


def test_push_needs_the_device_token(client, device, store):
    answer = client.patch(f"/v1/device/{device.uuid}/skill/sync", json={"skill_id": SKILL, "settings": {"a": 1}})
    assert answer.status_code == 401 and store.shared_skills.all() == {}


# what a device is no longer sent --------------------------------------------------------------

def _served(device) -> dict:
    """The skill ids each read route serves the device."""
    return {"v1": sorted(skill_settings.parse_gid(e["skill_gid"])[0] for e in device.get("/skill").json),
            "v2": sorted(skill_settings.parse_gid(gid)[0] for gid in device.get("/skill/settings").json),
            "sync": sorted(device.get("/skill/sync").json["skills"])}


def test_a_skill_the_manifest_dropped_is_no_longer_served_but_kept(client, store, config, device):
    other_device = Device(client, store, config)
    device.upload(SKILL, units="metric")
    device.upload(OTHER, sound="bell")
    other_device.upload(SKILL, units="metric")
    assert _served(device) == {"v1": [OTHER, SKILL], "v2": [OTHER, SKILL], "sync": [OTHER, SKILL]}

    device.manifest(OTHER)  # the weather skill was uninstalled
    assert _served(device) == {"v1": [OTHER], "v2": [OTHER], "sync": [OTHER]}
    assert store.shared_skills.get(SKILL)["settings"] == {"units": "metric"}  # kept
    assert _served(other_device)["sync"] == [SKILL]  # another device still has it

    device.manifest(OTHER, SKILL)  # installed again: its settings are back
    assert _served(device)["sync"] == [OTHER, SKILL]
    assert device.get("/skill/sync").json["skills"][SKILL]["settings"] == {"units": "metric"}


def test_values_of_fields_the_definition_dropped_are_not_served(device, store):
    device.upload(SKILL, units="metric", city="Lisbon")
    meta = {"skill_gid": device.gid(SKILL), "skillMetadata": _meta(units="metric")}
    assert device.send("PUT", "/settingsMeta", meta).status_code == 200  # a new version drops city

    assert device.get("/skill/settings").json == {device.gid(SKILL): {"units": "metric"}}
    assert device.get("/skill/sync").json["skills"][SKILL]["settings"] == {"units": "metric"}
    assert store.shared_skills.get(SKILL)["settings"] == {"units": "metric", "city": "Lisbon"}

    # a skill whose meta defines no field: every value is served
    assert device.push(OTHER, {"sound": "bell", "volume": 3}).json["settings"] == {"sound": "bell", "volume": 3}
    assert device.get("/skill/sync").json["skills"][OTHER]["settings"] == {"sound": "bell", "volume": 3}


@pytest.mark.parametrize("manifest, installed", [
    ({}, None),  # never uploaded
    ({"skills": {}, "blacklist": []}, []),  # uploaded, nothing installed
    ({"skills": {f"@u|{SKILL}": {"name": SKILL}, f"{OTHER}|21.02": {}}}, [OTHER, SKILL]),  # as stored
    ({"skills": [{"skill_gid": f"@u|{SKILL}"}, {"name": OTHER}, "junk"]}, [OTHER, SKILL]),  # a list
    ({"skills": "junk"}, None),
])
def test_installed_skills_read_both_manifest_shapes(manifest, installed):
    assert devices.installed_skills({"skills_manifest": manifest}) == installed
