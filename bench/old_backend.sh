#!/usr/bin/env bash
# Run the old ovos-local-backend 0.1.5 (October 2022) on 127.0.0.1, for side-by-side benchmarks.
#
#   bash bench/old_backend.sh [PORT] [DIR]      # defaults: 6713, /tmp/old-backend
#
# Today's versions of its dependencies no longer work with it (ovos_utils.configuration,
# ovos_utils.fakebus and get_xdg_data_save_path changed), so the first run creates
# DIR/venv with the versions of its time pinned below. Everything it writes stays in DIR:
# HOME and every XDG_* variable point there (it keeps its config and databases under
# ~/.config/json_database and its data path). Its config is written before it starts so
# it never geolocates by IP over the network (`geolocate`) and gives new devices the
# default location (`override_location`), and its Selene integration is off.
# Then, in another terminal:
#
#   python bench/fleet.py --url http://127.0.0.1:6712 --compare http://127.0.0.1:6713
set -euo pipefail

PORT="${1:-6713}"
DIR="$(mkdir -p "${2:-/tmp/old-backend}" && cd "${2:-/tmp/old-backend}" && pwd)"
PYTHON="${PYTHON:-python3.11}"  # the pins were tried with 3.11
VENV="$DIR/venv"
# SpeechRecognition: its STT routes import it without listing it as a requirement
PINS=(
  ovos-local-backend==0.1.5 ovos-utils==0.0.26 ovos-config==0.0.5 ovos-plugin-manager==0.0.20
  ovos-backend-client==0.0.5 ovos-stt-plugin-server==0.0.2 mycroft-messagebus-client==0.10.1
  json-database==0.7.0 combo-lock==0.2.4 Flask==2.2.2 Werkzeug==2.2.2 requests-cache==0.9.7
  timezonefinder==6.1.6 SpeechRecognition==3.8.1 PyYAML==5.4.1 pyee==8.1.0 numpy==1.26.4
)

if [ ! -x "$VENV/bin/ovos-local-backend" ]; then
  echo "creating $VENV with the dependency versions of ovos-local-backend 0.1.5 ..." >&2
  "$PYTHON" -m venv "$VENV"
  # PyYAML 5.4.1 only builds from source with Cython < 3
  echo "cython<3" > "$DIR/build-constraints.txt"
  PIP_CONSTRAINT="$DIR/build-constraints.txt" "$VENV/bin/pip" install --quiet "${PINS[@]}"
fi

HOME="$DIR/home"
export HOME XDG_CONFIG_HOME="$HOME/.config" XDG_DATA_HOME="$HOME/.local/share" \
  XDG_CACHE_HOME="$HOME/.cache" XDG_STATE_HOME="$HOME/.local/state" XDG_CONFIG_DIRS="$HOME/.config-dirs" \
  XDG_DATA_DIRS="$HOME/.data-dirs"
mkdir -p "$XDG_CONFIG_HOME/json_database" "$XDG_DATA_HOME"

# its configuration module writes its default config on first import; then turn off what
# reaches the network (IP geolocation, Selene) and set the port and data path
"$VENV/bin/python" - "$PORT" "$HOME" <<'EOF'
import sys
from ovos_local_backend.configuration import CONFIGURATION
CONFIGURATION.update(backend_port=int(sys.argv[1]), data_path=sys.argv[2],
                     geolocate=False, override_location=True)  # new devices get default_location
CONFIGURATION["selene"].update(enabled=False, proxy_pairing=False, opt_in=False, upload_metrics=False)
CONFIGURATION["microservices"]["ovos_fallback"] = False
CONFIGURATION.store()
EOF

cd "$DIR"
echo "ovos-local-backend 0.1.5 on http://127.0.0.1:$PORT (data in $HOME)" >&2
exec "$VENV/bin/ovos-local-backend" --flask-port "$PORT" --flask-host 127.0.0.1
