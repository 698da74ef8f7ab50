"""The admin web page, served by the backend itself under /admin.

Server-rendered Jinja templates with a small committed CSS and JS file: nothing to
build. Login, sessions, CSRF and headers: see `security`.
"""
import time

from flask import Flask

from . import security
from .views import bp


def init_app(app: Flask) -> None:
    """Register the admin page on `app`."""
    security.init_sessions(app)
    app.extensions["personal_backend_web"] = {"started_at": time.time(),
                                              "throttle": security.LoginThrottle()}
    app.register_blueprint(bp)
