"""The admin page's "Download a backup" (#18): admin only, a POST carrying the CSRF token
like every form; the archive restores into the same household."""
import io
import tarfile

import pytest

from browser import Browser
from ovos_skill_personal_backend.backend import backup, create_app, pairing
from ovos_skill_personal_backend.backend.store import Store


@pytest.fixture
def app(config, store, tmp_path):
    return create_app(config, store, config_path=str(tmp_path / "ovos_backend.conf"))


@pytest.fixture
def browser(client):
    return Browser(client)


def test_the_admin_downloads_a_backup_that_restores(browser, store, config, tmp_path):
    login = pairing.pair_directly(store, config)
    assert browser.login().status_code == 302
    assert b"Download a backup" in browser.get("/admin/config").data
    answer = browser.post("/admin/backup")
    assert answer.status_code == 200
    assert answer.headers["Content-Disposition"].startswith('attachment; filename="ovos-personal-backend-')
    assert answer.headers["Cache-Control"] == "no-store"
    archive = tmp_path / "downloaded.tar.gz"
    archive.write_bytes(answer.data)
    with tarfile.open(fileobj=io.BytesIO(answer.data)) as made:
        assert "manifest.json" in made.getnames()
    backup.restore(str(archive), str(tmp_path / "restored"), None)
    assert pairing.authenticate(Store(str(tmp_path / "restored")), login["accessToken"]) == login["uuid"]


def test_a_backup_needs_a_login_and_the_csrf_token(browser):
    refused = browser.client.post("/admin/backup")
    assert refused.status_code in (302, 400, 403) and b"manifest" not in refused.data
    assert browser.login().status_code == 302
    forged = browser.client.post("/admin/backup", data={"csrf_token": "forged"})
    assert forged.status_code == 400 and b"manifest" not in forged.data
