"""The `ovos-personal-backend` command: run the backend standalone (e.g. for a household LAN).

    ovos-personal-backend [--host H] [--port P] [--admin-key K] [--config F] [--data-dir D]
    ovos-personal-backend admin-key [--rotate] [--config F]
    ovos-personal-backend stt-model add DIR [--name N] [--config F] [--data-dir D]
    ovos-personal-backend stt-model list [--config F] [--data-dir D]
    ovos-personal-backend import-legacy [--home DIR] [--from PATH]... [--dry-run]
    ovos-personal-backend backup [--output FILE]
    ovos-personal-backend restore FILE

A server that listens beyond loopback pairs new devices only with the owner's approval,
which needs the admin key: started there without one, it makes one, keeps it in its
config file (owner-only) and says where to log in, so it is never unusable.
"""
import argparse
import os
import secrets
import signal
import sys
import threading
from typing import List, Optional

from . import config as config_module
from . import backup, create_app, legacy_import
from .errors import BackendError, ServiceUnavailable, StorageError
from .server import BackendServer
from .services import stt_models
from .services.stt import SpeechToText
from .store import FolderLock, Store

ADMIN_KEY_ENV = "OVOS_BACKEND_ADMIN_KEY"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    # accepted before and after the command name; SUPPRESS: the command's parser must not
    # reset what the main one read
    files = argparse.ArgumentParser(add_help=False)
    files.add_argument("--config", default=argparse.SUPPRESS,
                       help=f"config file (default {config_module.default_config_path()})")
    files.add_argument("--data-dir", default=argparse.SUPPRESS,
                       help=f"where devices and recordings are kept (default {config_module.default_data_path()})")
    parser = argparse.ArgumentParser(
        prog="ovos-personal-backend", parents=[files],
        description="A private personal backend for OVOS / Mycroft devices.")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1; "
                                       "0.0.0.0 for the whole LAN, which turns on pairing confirmation)")
    parser.add_argument("--port", type=int, help="port to listen on (default 6712)")
    parser.add_argument("--admin-key", help="admin key for this run (also from the environment "
                                            f"variable {ADMIN_KEY_ENV}); not saved")
    commands = parser.add_subparsers(dest="command", metavar="command")
    show = commands.add_parser("admin-key", parents=[files],
                               help="show the admin key kept in the config file, or --rotate it")
    show.add_argument("--rotate", action="store_true",
                      help="make a new key (the old one stops working when the server restarts)")
    models = commands.add_parser("stt-model", parents=[files],
                                 help="install a Whisper model folder for a machine that is never online")
    model_commands = models.add_subparsers(dest="model_command", metavar="action", required=True)
    add = model_commands.add_parser("add", parents=[files],
                                    help="copy a CTranslate2 Whisper model folder (model.bin, config.json, "
                                         "tokenizer.json, vocabulary.*) under the data path and check it loads")
    add.add_argument("folder", help="the model folder")
    add.add_argument("--name", help="its name under the data path (default: the folder's name)")
    model_commands.add_parser("list", parents=[files],
                              help="the installed models and what the configuration uses per language")
    legacy = commands.add_parser(
        "import-legacy", parents=[files],
        help="bring in the devices, settings and data of an old ovos-local-backend")
    legacy.add_argument("--home", help="the home folder the old backend ran in (default: yours)")
    legacy.add_argument("--from", dest="from_paths", action="append", default=[], metavar="PATH",
                        help="an old data folder or file (json_database folder, .db file, "
                             "recordings folder, config file; docker volumes); repeatable")
    legacy.add_argument("--dry-run", action="store_true",
                        help="show what would be imported; write nothing")
    backup_parser = commands.add_parser(
        "backup", parents=[files], help="write one archive of everything (it holds secrets: "
                                        "keep it private); the server may keep serving")
    backup_parser.add_argument("--output", help="the archive to write (default: "
                                                "ovos-personal-backend-<date>.tar.gz here)")
    restore_parser = commands.add_parser(
        "restore", parents=[files], help="replace the data with a backup's, after checking it "
                                         "all; what was there is kept beside as a dated copy")
    restore_parser.add_argument("archive", help="a file `backup` wrote")
    args = parser.parse_args(argv)
    for name in ("config", "data_dir"):
        setattr(args, name, getattr(args, name, None))
    return args


def overrides_from(args: argparse.Namespace) -> dict:
    server = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    admin_key = args.admin_key or os.environ.get(ADMIN_KEY_ENV)
    if admin_key:
        server["admin_key"] = admin_key
    overrides = {"server": server} if server else {}
    if args.data_dir:
        overrides["data_path"] = args.data_dir
    return overrides


def config_path(args: argparse.Namespace) -> str:
    return args.config or config_module.default_config_path()


def save_new_admin_key(path: str) -> str:
    """Make a strong key and keep it in the config file (other settings untouched)."""
    key = secrets.token_urlsafe(24)
    stored = config_module.load_file(path)
    config_module.save_file(path, config_module.merge(stored, {"server": {"admin_key": key}}))
    return key


def admin_key_command(args: argparse.Namespace) -> int:
    path = config_path(args)
    try:
        if args.rotate:
            print(save_new_admin_key(path))
            print(f"saved in {path}; restart the server to use it", file=sys.stderr)
            return 0
        key = (config_module.load_file(path).get("server") or {}).get("admin_key")
    except (config_module.ConfigError, OSError) as e:
        print(f"ovos-personal-backend: {e}", file=sys.stderr)
        return 2
    if not key:
        print(f"no admin key in {path}; make one with: ovos-personal-backend admin-key --rotate",
              file=sys.stderr)
        return 1
    print(key)
    return 0


def ensure_admin_key(config: dict, path: str) -> None:
    """A network server with no admin key gets one (see the module docstring)."""
    if config["server"]["admin_key"] or config_module.is_loopback(config["server"]["host"]):
        return
    config["server"]["admin_key"] = save_new_admin_key(path)
    print(f"made an admin key for this network server and saved it in {path} (owner-only); "
          "show it with: ovos-personal-backend admin-key", flush=True)


def serve(args: argparse.Namespace) -> int:
    path = config_path(args)
    try:
        config = config_module.load(args.config, overrides_from(args))
        ensure_admin_key(config, path)
        lock = FolderLock(config["data_path"], "ovos-personal-backend serving it")
        store = Store(config["data_path"])
    except (config_module.ConfigError, StorageError) as e:
        print(f"ovos-personal-backend: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"ovos-personal-backend: cannot save the admin key in {path}: {e.strerror or e}",
              file=sys.stderr)
        return 2
    server = BackendServer(create_app(config, store, config_path=args.config), config["server"]["host"],
                           config["server"]["port"],
                           max_body_bytes=config["server"]["max_body_mb"] * 1024 * 1024)
    try:
        server.start()
    except OSError as e:
        lock.release()
        print(f"ovos-personal-backend: cannot listen on {config['server']['host']}:"
              f"{config['server']['port']}: {e.strerror or e}", file=sys.stderr)
        return 2
    config["server"]["port"] = server.port  # the bound one, when asked for port 0
    print(f"ovos-personal-backend serving on {server.url} "
          f"(api {server.url}/{config['server']['version']}, pairing: {config['server']['pairing']}, "
          f"data: {config['data_path']})", flush=True)
    public = config_module.public_url(config)
    if not config_module.is_loopback(config["server"]["host"]):
        print(f"devices on the network use server.url = {public}", flush=True)
    if config["server"]["admin_key"]:
        print(f"admin page: {public}/admin/", flush=True)
    else:
        print("admin page and API off: no admin key (set server.admin_key, --admin-key, or "
              f"{ADMIN_KEY_ENV})", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    lock.release()
    print("ovos-personal-backend stopped", flush=True)
    return 0


def stt_model_command(args: argparse.Namespace) -> int:
    """`stt-model add`: install a model folder, prove it loads, say which languages the
    default configuration now uses it for. `stt-model list`: what is installed and used."""
    try:
        config = config_module.load(args.config, overrides_from(args))
    except (config_module.ConfigError, OSError) as e:
        print(f"ovos-personal-backend: {e}", file=sys.stderr)
        return 2
    data_path = config["data_path"]
    if args.model_command == "list":
        for folder in stt_models.installed_models(data_path):
            kind = "multilingual" if stt_models.is_multilingual(folder) else "English only"
            print(f"{folder} ({kind})")
        for lang in sorted({config["lang"], "en-us", "de-de"}):
            print(f"{lang}: {_describe(stt_models.choose(config['stt'], data_path, lang, fetch=False))}")
        return 0
    source = os.path.abspath(args.folder)
    problem = stt_models.check_model_folder(source)
    if problem:
        print(f"ovos-personal-backend: not a model folder: {problem}", file=sys.stderr)
        return 2
    # loaded from where it is first: a model that does not load never replaces an installed one
    probe = SpeechToText({"module": stt_models.WHISPER, stt_models.WHISPER: {"model": source}}, data_path)
    try:
        probe.load()
        problem = probe.status()["fallback_reason"]
    except ServiceUnavailable as e:
        problem = e.message
    if problem:
        print(f"ovos-personal-backend: the model was not installed: {problem}", file=sys.stderr)
        return 1
    try:
        folder = stt_models.add_model(source, data_path, args.name)
    except (ValueError, OSError) as e:
        print(f"ovos-personal-backend: cannot install the model: {e}", file=sys.stderr)
        return 2
    multilingual = stt_models.is_multilingual(folder)
    print(f"installed {folder} ({'multilingual' if multilingual else 'English only'}; loaded in "
          f"{probe.load_seconds:.1f} s)")
    lang = config["lang"] if multilingual else "en-us"
    choice = stt_models.choose(config["stt"], data_path, lang)
    print(f"{lang}: {_describe(choice)}")
    if choice.path != folder:
        print("the stt block of the configuration names another model; set english_model/"
              "multilingual_model to \"auto\" to use this one", file=sys.stderr)
    return 0


def _describe(choice: stt_models.Choice) -> str:
    if choice.reason:
        return f"{choice.module} (fallback: {choice.reason})"
    return f"{choice.module}" + (f" with {choice.model} ({choice.source}: {choice.path})" if choice.model else "")

def import_legacy_command(args: argparse.Namespace) -> int:
    try:
        config = config_module.load(args.config, overrides_from(args))
        with FolderLock(config["data_path"], "import-legacy"):
            report = legacy_import.run(Store(config["data_path"]), config, config_path(args),
                                       args.home, args.from_paths, args.dry_run)
    except (config_module.ConfigError, BackendError, legacy_import.LegacyFormatError,
            legacy_import.NothingFound) as e:
        return _failed(e)
    print("\n".join(report.lines()))
    return 0


def backup_command(args: argparse.Namespace) -> int:
    """A backup only reads: it runs beside a serving server (see backup.py)."""
    output = args.output or backup.default_name()
    try:
        config = config_module.load(args.config, overrides_from(args))
        manifest = backup.write(Store(config["data_path"]), config_path(args), output)
    except FileExistsError:
        return _failed(f"{output} exists already; choose another --output")
    except (config_module.ConfigError, BackendError, OSError) as e:
        return _failed(e)
    counts = ", ".join(f"{n} {name}" for name, n in manifest["counts"].items() if n)
    print(f"backup written to {output} (owner-only; it holds secrets): {counts or 'no records'}")
    return 0


def restore_command(args: argparse.Namespace) -> int:
    try:
        config = config_module.load(args.config, overrides_from(args))
        done = backup.restore(args.archive, config["data_path"], config_path(args))
    except (config_module.ConfigError, BackendError, OSError) as e:
        return _failed(e)
    counts = ", ".join(f"{n} {name}" for name, n in done["counts"].items() if n)
    print(f"restored {args.archive}: {counts or 'no records'}")
    print(f"the data that was there is kept in {done['kept_data']}")
    if done["kept_config"]:
        print(f"the config that was there is kept in {done['kept_config']}")
    return 0


def _failed(error) -> int:
    print(f"ovos-personal-backend: {getattr(error, 'message', None) or error}", file=sys.stderr)
    return 2


COMMANDS = {"admin-key": admin_key_command, "stt-model": stt_model_command,
            "import-legacy": import_legacy_command, "backup": backup_command,
            "restore": restore_command}


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    return COMMANDS.get(args.command, serve)(args)


if __name__ == "__main__":
    sys.exit(main())
