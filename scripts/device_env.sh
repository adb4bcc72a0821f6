# Sourced by the GPU scripts: install the carried wheels (.whl/, from scripts/device_wheels.sh) into /tmp/site and
# put them and this checkout on PYTHONPATH. Without .whl/ (a CPU check, a machine that has the packages) it only
# sets PYTHONPATH. $PYTHON chooses the interpreter (default python3).
PYTHON=${PYTHON:-python3}
case $PYTHON in */*) PYTHON=$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON") ;; esac  # scripts cd later
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The wheels are for the device's Python (3.12, scripts/device_wheels.sh): an interpreter of another version (a CPU
# check here) uses its own packages instead.
if compgen -G "$repo/.whl/*.whl" >/dev/null && [ "$("$PYTHON" -c 'import sys; print(sys.version_info[:2] == (3, 12))')" = True ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "$repo"/.whl/*.whl
    export PYTHONPATH=/tmp/site:$repo${PYTHONPATH:+:$PYTHONPATH}
else
    export PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
