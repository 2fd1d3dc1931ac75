# Sourced by the other scripts: puts `uv` on PATH, installing it from PyPI on a fresh Debian
# machine with Python 3.11 (and pip from apt if even that is missing), then syncs the
# workspace with its development tools.
if ! command -v uv >/dev/null 2>&1; then
    if ! python3 -m uv --version >/dev/null 2>&1; then
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
    # Put the uv binary itself on PATH, so that commands run from the workspace's
    # virtual environment (whose python3 has no uv module) find it too.
    PATH="$PATH:$(dirname "$(python3 -c 'import uv; print(uv.find_uv_bin())')")"
    export PATH
fi
# Use the system's certificate store (uv's own roots miss private CAs some networks need).
export UV_SYSTEM_CERTS=1
uv sync --quiet --all-packages --group dev
