"""The admin reading ONE OAuth token by id (`GET /v1/admin/oauth_toks/{id}`, the real
client's `db_get_oauth_token`) gets the token itself, secrets included: that is how the
admin obtains a token to use. Listings and the answers to writes stay masked."""
import pytest
import requests

from conftest import ADMIN_KEY
from standins import paired_client

MASK = "********"
TOKEN = {"access_token": "secret-access", "refresh_token": "secret-refresh",
         "id_token": "secret-id", "expires_at": 123.0, "scope": "read"}


@pytest.fixture
def device(store, config, live_server, tmp_path):
    """A paired device's client holding the admin key (the client's db_* calls)."""
    with paired_client(store, config, live_server, tmp_path) as client:
        yield client


def test_one_token_by_id_is_unmasked(device):
    token_id = f"@{device.uuid}|spotify"
    written = device.db_post_oauth_token(token_id, TOKEN)
    assert written["access_token"] == MASK  # the echo of a write stays masked

    assert device.db_get_oauth_token(token_id) == {"token_id": token_id, **TOKEN}


def test_listings_stay_masked(device):
    device.db_post_oauth_token("spotify", TOKEN)
    [row] = device.db_list_oauth_tokens()
    assert (row["access_token"], row["refresh_token"], row["id_token"]) == (MASK,) * 3
    assert (row["expires_at"], row["scope"]) == (123.0, "read")
    listing = requests.get(f"{device.backend_url}/v1/admin/oauth_toks/list", timeout=10,
                           headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert "secret" not in listing.text


def test_the_unmasked_token_written_back_changes_nothing(device):
    """The manager writes rows back: the whole token read by id is a valid write."""
    device.db_post_oauth_token("spotify", TOKEN)
    read = device.db_get_oauth_token("spotify")
    device.db_update_oauth_token("spotify", {k: v for k, v in read.items() if k != "token_id"})
    assert device.db_get_oauth_token("spotify") == read


def test_only_the_admin_reads_a_token(device):
    device.db_post_oauth_token("spotify", TOKEN)
    for key in (device.login["accessToken"], "", "wrong-admin-key-0123456789"):
        response = requests.get(f"{device.backend_url}/v1/admin/oauth_toks/spotify", timeout=10,
                                headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 401 and "secret" not in response.text
