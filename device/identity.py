"""identity2.json: the device's uuid and tokens, as every OVOS/Mycroft client keeps them.

Read and written here directly (a small JSON file) so the skill needs no
ovos-backend-client, whose `ovos-config<1` pin would downgrade a current device's
ovos-config. Same path and fields as that client: `~/.config/mycroft/identity/identity2.json`
with `uuid`, `access`, `refresh`, `expires_at`.
"""
import json
import os
import time
from dataclasses import asdict, dataclass
from os.path import join
from typing import Optional

from ovos_config.locations import get_xdg_config_save_path
from ovos_utils.log import LOG

from ..backend.store import write_atomic


@dataclass
class Identity:
    uuid: str = ""
    access: str = ""
    refresh: str = ""
    expires_at: float = -1


def identity_path() -> str:
    """Where OVOS clients keep identity2.json (the XDG config folder, read at every call)."""
    return join(get_xdg_config_save_path(), "identity", "identity2.json")


def load(path: Optional[str] = None) -> Identity:
    """The identity on disk; an empty one when there is none or it is unreadable."""
    path = path or identity_path()
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return Identity()
    except (OSError, ValueError) as e:
        LOG.error(f"unreadable device identity {path}: {e}")
        return Identity()
    if not isinstance(data, dict):
        return Identity()
    fields = Identity.__dataclass_fields__
    return Identity(**{k: v for k, v in data.items() if k in fields and isinstance(v, (str, int, float))})


def save(login: dict, path: Optional[str] = None) -> Identity:
    """Write a login (`{uuid, accessToken, refreshToken, expiration}`) as identity2.json,
    atomically and readable by the owner only (it holds the device's tokens)."""
    path = path or identity_path()
    expiration = login.get("expiration", -1)
    ident = Identity(uuid=login.get("uuid", ""), access=login.get("accessToken", ""),
                     refresh=login.get("refreshToken", ""),
                     expires_at=time.time() + expiration if expiration and expiration > 0 else -1)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomic(path, json.dumps(asdict(ident)).encode())
    return ident
