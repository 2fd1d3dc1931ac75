# Sourced by the other scripts: make sure `uv` is on PATH on a fresh Debian machine with
# Python 3.11, installing it from PyPI (with pip, itself from apt if missing) if needed.
if ! command -v uv >/dev/null 2>&1; then
    export PATH="$HOME/.local/bin:$PATH"
fi
if ! command -v uv >/dev/null 2>&1; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip python3-venv >/dev/null
        else
            echo "need uv or pip: apt-get install python3-pip" >&2
            exit 1
        fi
    fi
    python3 -m pip install --quiet --user uv 2>/dev/null \
        || python3 -m pip install --quiet --user --break-system-packages uv
fi
uv sync --quiet --all-packages --group dev
