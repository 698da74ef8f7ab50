"""OAuth: apps the admin registers (the real client's `db_*oauth*` calls), the authorization
dance against a stand-in provider on 127.0.0.1, and the tokens devices read with
`oauth_get_token`, refreshed at the provider when they expired."""
import base64
import hashlib
import time
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from conftest import ADMIN_KEY
from standins import StandIn, json_reply, nothing_listening, paired_client

CLIENT_ID, CLIENT_SECRET = "client-abc", "client-secret-xyz"
MASK = "********"


class Provider:
    """What an OAuth provider does at its token endpoint, recording every exchange."""

    def __init__(self):
        self.codes = {}  # code -> PKCE challenge it was issued with
        self.refused = None  # an error to answer instead

    def answer(self, request):
        if self.refused:
            return json_reply({"error": self.refused, "error_description": "nope"}, 400)
        form = request.form
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {basic}":
            return json_reply({"error": "invalid_client"}, 401)
        if form.get("grant_type") == "authorization_code":
            challenge = self.codes.pop(form.get("code"), None)
            verifier = form.get("code_verifier", "").encode()
            computed = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
            if challenge is None or computed.decode() != challenge:
                return json_reply({"error": "invalid_grant"}, 400)
            return json_reply({"access_token": "access-1", "refresh_token": "refresh-1",
                               "expires_in": 3600, "token_type": "Bearer", "scope": "read"})
        if form.get("grant_type") == "refresh_token" and form.get("refresh_token") == "refresh-1":
            return json_reply({"access_token": "access-2", "expires_in": 3600, "token_type": "Bearer"})
        return json_reply({"error": "unsupported_grant_type"}, 400)


@pytest.fixture
def provider():
    behaviour = Provider()
    with StandIn(behaviour.answer) as stand_in:
        stand_in.behaviour = behaviour
        yield stand_in


@pytest.fixture
def device(store, config, live_server, tmp_path):
    config["server"]["url"] = live_server.url  # where providers send browsers back
    with paired_client(store, config, live_server, tmp_path) as client:
        yield client


@pytest.fixture
def spotify(device, provider):
    """An app registered by the admin through the real client."""
    return device.db_post_oauth_app("spotify", CLIENT_ID, CLIENT_SECRET, f"{provider.url}/authorize",
                                    f"{provider.url}/token", None, "read")


def as_device(device, path, **params):
    return requests.get(f"{device.backend_url}/v1/{path}", params=params, timeout=10,
                        headers={"Authorization": f"Bearer {device.login['accessToken']}"})


def as_admin(method, device, path, **kwargs):
    return requests.request(method, f"{device.backend_url}/v1/admin/{path}", timeout=10,
                            headers={"Authorization": f"Bearer {ADMIN_KEY}"}, **kwargs)


def authorize(device, provider, path="auth/spotify/auth_url", admin=False):
    """Ask for the authorization URL, play the person granting access and the provider
    redirecting the browser back; returns (the URL's query, the callback response)."""
    response = as_admin("GET", device, path) if admin else as_device(device, path)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    url = urlsplit(response.text)
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{provider.url}/authorize"
    query = dict(parse_qsl(url.query))
    provider.behaviour.codes["the-code"] = query["code_challenge"]
    callback = requests.get(query["redirect_uri"], params={"code": "the-code", "state": query["state"]},
                            timeout=10)
    return query, callback


# admin: apps ------------------------------------------------------------------------------

def test_the_admin_registers_an_app_without_refresh_endpoint(device, spotify, provider):
    assert spotify["token_id"] == "spotify" and spotify["client_id"] == CLIENT_ID
    assert spotify["client_secret"] == MASK and spotify["refresh_endpoint"] == ""
    assert spotify["callback_endpoint"] == f"{device.backend_url}/v1/auth/callback/spotify"
    assert device.db_list_oauth_apps() == [spotify]
    assert device.db_get_oauth_app("spotify") == spotify


def test_the_manager_registers_an_app_with_refresh_endpoint(device, provider):
    response = as_admin("POST", device, "oauth_apps", json={
        "oauth_service": "deezer", "client_id": "c", "client_secret": "s",
        "auth_endpoint": "https://deezer.example/auth", "token_endpoint": "https://deezer.example/token",
        "refresh_endpoint": "https://deezer.example/refresh",
        "callback_endpoint": "https://backend.example/v1/auth/callback/deezer", "scope": "x"})
    assert response.status_code == 200
    row = device.db_get_oauth_app("deezer")
    assert row["refresh_endpoint"] == "https://deezer.example/refresh"
    assert row["callback_endpoint"] == "https://backend.example/v1/auth/callback/deezer"


def test_updates_keep_what_they_do_not_name_and_masked_secrets(device, spotify, provider):
    updated = device.db_update_oauth_app("spotify", scope="read write")
    assert updated["scope"] == "read write" and updated["client_id"] == CLIENT_ID
    # the manager writes a row back as it read it: the masked secret must survive
    row = device.db_get_oauth_app("spotify")
    assert as_admin("PUT", device, "oauth_apps/spotify", json=row).status_code == 200
    _, callback = authorize(device, provider)
    assert callback.status_code == 200  # the provider checked the real client secret


def test_put_creates_a_missing_app(device, provider):
    row = device.db_update_oauth_app("github", client_id="gh", client_secret="s",
                                     auth_endpoint="https://github.example/login/oauth/authorize",
                                     token_endpoint="https://github.example/login/oauth/access_token",
                                     scope="repo")
    assert row["token_id"] == "github" and device.db_get_oauth_app("github")["client_id"] == "gh"


def test_the_admin_deletes_an_app(device, spotify):
    assert device.db_delete_oauth_app("spotify") == {"success": True, "token_id": "spotify"}
    assert "no OAuth app" in device.db_get_oauth_app("spotify")["error"]
    assert as_admin("DELETE", device, "oauth_apps/spotify").status_code == 404


@pytest.mark.parametrize("body, words", [
    ({"token_id": "x", "client_id": "c", "token_endpoint": "https://t.example"},
     "auth_endpoint required"),
    ({"token_id": "x", "client_id": "c", "auth_endpoint": "javascript:alert(1)",
      "token_endpoint": "https://t.example"}, "auth_endpoint must be an http(s) URL"),
    ({"token_id": "x", "client_id": "c", "auth_endpoint": "https://a.example",
      "token_endpoint": "ftp://t.example"}, "token_endpoint must be an http(s) URL"),
    ({"token_id": "x", "client_id": 5}, "client_id must be a string"),
    ({"token_id": "x", "surprise": 1}, "unknown OAuth app fields"),
    ({"token_id": "../etc", "client_id": "c"}, "an OAuth app id is"),
    ({"token_id": "list", "client_id": "c"}, "an OAuth app id is"),
    ({"client_id": "c"}, "an OAuth app id is"),
])
def test_bad_apps_are_refused(device, body, words):
    response = as_admin("POST", device, "oauth_apps", json=body)
    assert response.status_code == 400 and words in response.json()["error"]
    assert device.db_list_oauth_apps() == []


def test_an_app_cannot_be_renamed_by_put(device, spotify):
    response = as_admin("PUT", device, "oauth_apps/spotify", json={"token_id": "other"})
    assert response.status_code == 400 and "does not match" in response.json()["error"]


def test_the_admin_api_needs_the_admin_key(device, spotify):
    for path in ("oauth_apps/list", "oauth_apps/spotify", "oauth_toks/list"):
        response = requests.get(f"{device.backend_url}/v1/admin/{path}", timeout=10,
                                headers={"Authorization": f"Bearer {device.login['accessToken']}"})
        assert response.status_code == 401


# the authorization dance ----------------------------------------------------------------------

def test_a_device_authorizes_and_reads_its_token(device, spotify, provider):
    query, callback = authorize(device, provider)

    assert query["client_id"] == CLIENT_ID and query["response_type"] == "code"
    assert query["scope"] == "read" and query["code_challenge_method"] == "S256"
    assert query["redirect_uri"] == f"{device.backend_url}/v1/auth/callback/spotify"
    assert len(query["state"]) >= 40
    assert callback.status_code == 200
    assert callback.json()["token_id"] == f"@{device.uuid}|spotify"
    assert "access-1" not in callback.text  # the browser never sees the token
    [exchange] = provider.requests
    assert exchange.method == "POST" and exchange.path == "/token"
    assert exchange.form["grant_type"] == "authorization_code"
    assert exchange.form["redirect_uri"] == query["redirect_uri"]
    assert device.login["accessToken"] not in str(exchange)

    token = device.oauth_get_token("spotify")
    assert token["access_token"] == "access-1" and token["refresh_token"] == "refresh-1"
    assert time.time() + 3500 < token["expires_at"] <= time.time() + 3600
    assert device.device_get_oauth_token("spotify") == token


def test_a_state_works_once(device, spotify, provider):
    query, callback = authorize(device, provider)
    assert callback.status_code == 200
    replay = requests.get(query["redirect_uri"], params={"code": "the-code", "state": query["state"]},
                          timeout=10)
    assert replay.status_code == 400 and "unknown or expired" in replay.json()["error"]
    assert len(provider.requests) == 1


@pytest.mark.parametrize("params", [{"code": "c"}, {"code": "c", "state": "guessed-state"}])
def test_strangers_cannot_bind_tokens(device, spotify, provider, params, store):
    response = requests.get(f"{device.backend_url}/v1/auth/callback/spotify", params=params, timeout=10)
    assert response.status_code == 400 and "unknown or expired" in response.json()["error"]
    old_style = requests.get(f"{device.backend_url}/v1/auth/callback/{device.uuid}|spotify",
                             params=params, timeout=10)
    assert old_style.status_code == 400
    assert provider.requests == [] and store.oauth_tokens.all() == {}


def test_an_expired_state_is_refused(device, spotify, provider, store):
    url = as_device(device, "auth/spotify/auth_url").text
    state = dict(parse_qsl(urlsplit(url).query))["state"]
    [key] = store.oauth_states.keys()
    store.oauth_states.update(key, lambda pending: {**pending, "expires_at": time.time() - 1})
    response = requests.get(f"{device.backend_url}/v1/auth/callback/spotify",
                            params={"code": "c", "state": state}, timeout=10)
    assert response.status_code == 400 and provider.requests == []


def test_a_state_belongs_to_its_app(device, spotify, provider):
    device.db_post_oauth_app("other", CLIENT_ID, CLIENT_SECRET, f"{provider.url}/authorize",
                             f"{provider.url}/token", None, "")
    url = as_device(device, "auth/spotify/auth_url").text
    state = dict(parse_qsl(urlsplit(url).query))["state"]
    response = requests.get(f"{device.backend_url}/v1/auth/callback/other",
                            params={"code": "c", "state": state}, timeout=10)
    assert response.status_code == 400 and "does not belong" in response.json()["error"]
    assert provider.requests == []


def test_a_refusal_by_the_person_or_the_provider_is_reported(device, spotify, provider):
    url = as_device(device, "auth/spotify/auth_url").text
    state = dict(parse_qsl(urlsplit(url).query))["state"]
    denied = requests.get(f"{device.backend_url}/v1/auth/callback/spotify",
                          params={"error": "access_denied", "state": state}, timeout=10)
    assert denied.status_code == 400 and "access_denied" in denied.json()["error"]

    provider.behaviour.refused = "invalid_grant"
    _, callback = authorize(device, provider)
    assert callback.status_code == 502 and "invalid_grant" in callback.json()["error"]
    assert device.oauth_get_token("spotify") is None


def test_an_unreachable_provider_is_a_502(device, spotify, provider):
    device.db_update_oauth_app("spotify", token_endpoint=nothing_listening() + "/token")
    _, callback = authorize(device, provider)
    assert callback.status_code == 502 and "cannot reach" in callback.json()["error"]


def test_devices_choose_no_endpoints(device, spotify, provider):
    response = as_device(device, "auth/spotify/auth_url", auth_endpoint="http://evil.example/",
                         token_endpoint="http://evil.example/", client_id="evil")
    assert response.text.startswith(f"{provider.url}/authorize?")
    assert "evil" not in response.text
    missing = as_device(device, "auth/unknown/auth_url")
    assert missing.status_code == 404 and "no OAuth app" in missing.json()["error"]
    stranger = requests.get(f"{device.backend_url}/v1/auth/spotify/auth_url", timeout=10,
                            headers={"Authorization": "Bearer nope"})
    assert stranger.status_code == 401


def test_the_admin_authorizes_for_the_whole_household(device, spotify, provider):
    _, callback = authorize(device, provider, "oauth_apps/spotify/auth_url", admin=True)
    assert callback.json()["token_id"] == "spotify"
    assert device.oauth_get_token("spotify")["access_token"] == "access-1"


# tokens ------------------------------------------------------------------------------------

def test_an_expired_token_is_refreshed_when_asked(device, spotify, provider):
    own = f"@{device.uuid}|spotify"
    device.db_post_oauth_token(own, {"access_token": "access-0", "refresh_token": "refresh-1",
                                     "expires_at": time.time() - 10, "token_type": "Bearer"})

    stale = device.oauth_get_token("spotify", auto_refresh=False)
    assert stale["access_token"] == "access-0" and provider.requests == []

    fresh = device.oauth_refresh_token("spotify")
    assert fresh["access_token"] == "access-2"
    assert fresh["refresh_token"] == "refresh-1"  # the provider sent none: the old one stays
    assert fresh["expires_at"] > time.time() + 3000
    [exchange] = provider.requests
    assert exchange.form == {"grant_type": "refresh_token", "refresh_token": "refresh-1"}
    assert device.oauth_get_token("spotify") == fresh  # stored, and no second refresh
    assert len(provider.requests) == 1


def test_a_separate_refresh_endpoint_is_used(device, spotify, provider):
    device.db_post_oauth_token(f"@{device.uuid}|spotify",
                               {"access_token": "a", "refresh_token": "refresh-1", "expires_at": 1})
    as_admin("PUT", device, "oauth_apps/spotify", json={"refresh_endpoint": f"{provider.url}/refresh"})
    assert device.oauth_get_token("spotify")["access_token"] == "access-2"
    assert provider.requests[0].path == "/refresh"


def test_household_token_and_own_token(device, spotify, store, config, live_server, tmp_path):
    device.db_post_oauth_token("spotify", {"access_token": "household"})
    with paired_client(store, config, live_server, tmp_path) as other:
        other.db_post_oauth_token(f"@{other.uuid}|spotify", {"access_token": "mine"})
        assert other.oauth_get_token("spotify")["access_token"] == "mine"
        assert device.oauth_get_token("spotify")["access_token"] == "household"
        # a device cannot read another device's token through the path
        response = requests.get(f"{live_server.url}/v1/device/{other.uuid}/token/spotify", timeout=10,
                                headers={"Authorization": f"Bearer {device.login['accessToken']}"})
        assert response.status_code == 401


def test_no_token_is_json_null(device, spotify):
    assert device.oauth_get_token("spotify") is None
    response = as_device(device, f"device/{device.uuid}/token/spotify", refresh="True")
    assert response.status_code == 404 and response.json() is None


def test_the_admin_manages_tokens_and_sees_them_masked(device):
    own = f"@{device.uuid}|spotify"
    posted = device.db_post_oauth_token(own, {"access_token": "secret-a", "refresh_token": "secret-r",
                                              "expires_at": 123.0, "scope": "read"})
    assert posted == {"token_id": own, "access_token": MASK, "refresh_token": MASK,
                      "expires_at": 123.0, "scope": "read"}
    assert device.db_list_oauth_tokens() == [posted]
    # reading one token by id gives it whole (test_parity_oauth_token.py)
    assert device.db_get_oauth_token(own) == {**posted, "access_token": "secret-a",
                                              "refresh_token": "secret-r"}
    assert "secret" not in as_admin("GET", device, "oauth_toks/list").text

    # writing back what was read keeps the secrets; new values replace them
    device.db_update_oauth_token(own, {**posted, "scope": "read write"})
    token = device.oauth_get_token("spotify", auto_refresh=False)
    assert token["access_token"] == "secret-a" and token["scope"] == "read write"
    device.db_update_oauth_token(own, {"access_token": "secret-b"})
    assert device.oauth_get_token("spotify", auto_refresh=False) == {"access_token": "secret-b"}

    by_post = as_admin("POST", device, "oauth_toks",
                       json={"token_id": "shared", "token_data": {"access_token": "s"}})
    assert by_post.status_code == 200

    assert device.db_delete_oauth_token(own) == {"success": True, "token_id": own}
    assert "no OAuth token" in device.db_get_oauth_token(own)["error"]


@pytest.mark.parametrize("body, words", [
    ({"token_id": "x", "token_data": "not json"}, "not valid JSON"),
    ({"token_id": "x", "token_data": []}, "must be a JSON object"),
    ({"token_id": "x", "token_data": {"access_token": MASK}}, "no stored value"),
    ({"token_id": "a|b|c", "token_data": {"access_token": "t"}}, "a token id is"),
    ({"token_id": "x", "token_data": {"blob": "x" * 20000}}, "larger than"),
])
def test_bad_tokens_are_refused(device, body, words):
    response = as_admin("PUT", device, "oauth_toks", json=body)
    assert response.status_code == 400 and words in response.json()["error"]
