# Source me: create (once) and activate the project's virtual environment with the extras
# in $HPCTRAIN_EXTRAS (default "mpich,jit"). Works on a fresh Debian machine with Python 3.10+.
#   HPCTRAIN_VENV=/path/to/venv   use another venv location (default: <repo>/.venv)
set -euo pipefail
HPCTRAIN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HPCTRAIN_VENV=${HPCTRAIN_VENV:-$HPCTRAIN_ROOT/.venv}
HPCTRAIN_EXTRAS=${HPCTRAIN_EXTRAS:-mpich,jit}

if [ ! -x "$HPCTRAIN_VENV/bin/python" ]; then
  if ! python3 -m venv "$HPCTRAIN_VENV" 2>/dev/null; then
    # Debian splits venv support out of python3; install it when we can.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "hpctrain: installing python3-venv with apt-get" >&2
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$HPCTRAIN_VENV"
      python3 -m venv "$HPCTRAIN_VENV"
    else
      echo "hpctrain: 'python3 -m venv' failed; install python3-venv (sudo apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
fi
# shellcheck disable=SC1091
. "$HPCTRAIN_VENV/bin/activate"
stamp="$HPCTRAIN_VENV/.hpctrain-installed-$HPCTRAIN_EXTRAS"
if [ ! -e "$stamp" ] || [ "$HPCTRAIN_ROOT/setup.cfg" -nt "$stamp" ]; then
  echo "hpctrain: installing hpctrain[$HPCTRAIN_EXTRAS] into $HPCTRAIN_VENV" >&2
  python -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel
  python -m pip install -q --disable-pip-version-check -e "$HPCTRAIN_ROOT[$HPCTRAIN_EXTRAS]"
  touch "$stamp"
fi
