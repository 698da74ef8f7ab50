"""The Flask test client plus what a browser does for the owner on the admin page: keep
the session and send the page's CSRF token with each form."""
import time

from conftest import ADMIN_KEY


class Browser:
    def __init__(self, client):
        self.client = client

    def csrf(self) -> str:
        with self.client.session_transaction("/admin/") as session:
            if "csrf" not in session:
                session["csrf"] = "token-" + str(time.time())
            return session["csrf"]

    def login(self, key: str = ADMIN_KEY, **kwargs):
        return self.client.post("/admin/login", data={"admin_key": key, "csrf_token": self.csrf(),
                                                      "next": "/admin/"}, **kwargs)

    def get(self, path: str, **kwargs):
        return self.client.get(path, **kwargs)

    def post(self, path: str, data=None, **kwargs):
        return self.client.post(path, data={"csrf_token": self.csrf(), **(data or {})}, **kwargs)
