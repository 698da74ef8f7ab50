"""The `ovos-personal-backend` command: run the backend standalone (e.g. for a household LAN)."""
import argparse
import signal
import sys
import threading
from typing import List, Optional

from . import config as config_module
from . import create_app
from .errors import StorageError
from .server import BackendServer
from .store import Store


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ovos-personal-backend",
        description="A private personal backend for OVOS / Mycroft devices.")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1; "
                                       "0.0.0.0 for the whole LAN, which turns on pairing confirmation)")
    parser.add_argument("--port", type=int, help="port to listen on (default 6712)")
    parser.add_argument("--config", help=f"config file (default {config_module.default_config_path()})")
    parser.add_argument("--data-dir", help="where devices and recordings are kept "
                                           f"(default {config_module.default_data_path()})")
    return parser.parse_args(argv)


def overrides_from(args: argparse.Namespace) -> dict:
    server = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    overrides = {"server": server} if server else {}
    if args.data_dir:
        overrides["data_path"] = args.data_dir
    return overrides


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        config = config_module.load(args.config, overrides_from(args))
        store = Store(config["data_path"])
    except (config_module.ConfigError, StorageError) as e:
        print(f"ovos-personal-backend: {e}", file=sys.stderr)
        return 2
    server = BackendServer(create_app(config, store, config_path=args.config), config["server"]["host"],
                           config["server"]["port"],
                           max_body_bytes=config["server"]["max_body_mb"] * 1024 * 1024)
    try:
        server.start()
    except OSError as e:
        print(f"ovos-personal-backend: cannot listen on {config['server']['host']}:"
              f"{config['server']['port']}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"ovos-personal-backend serving on {server.url} "
          f"(api {server.url}/{config['server']['version']}, pairing: {config['server']['pairing']}, "
          f"data: {config['data_path']})", flush=True)
    if not config_module.is_loopback(config["server"]["host"]):
        print(f"devices on the network use server.url = {config_module.public_url(config)}",
              flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    print("ovos-personal-backend stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
