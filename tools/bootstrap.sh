#!/usr/bin/env bash
# Turn a bare Debian 12 + Python 3.11 machine into the SGFT dev environment: Debian packages, a .venv with the
# ROS 2 Kilted wheels and everything in requirements.txt, and the CMake path fix-ups the wheels need.
# Idempotent: a second run checks stamps and returns in seconds.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
python="${PYTHON:-python3.11}"
apt_packages=(cmake g++ make libosmesa6 git)

fail() { echo "bootstrap: ERROR: $*" >&2; exit 1; }
step() { echo "bootstrap: $*"; }

command -v "$python" >/dev/null 2>&1 || python=python3
"$python" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null \
  || fail "Python 3.11 is required (the ros-kilted wheels are cp311); set PYTHON=/path/to/python3.11"

# 1. Debian packages (only when one is missing, so the second run does not touch apt).
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq || fail "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" \
    || fail "apt-get install ${missing[*]} failed"
fi

# 2. The virtual environment, rebuilt only when requirements/constraints change.
stamp="$venv/.sgft-requirements.sha256"
want="$(cat "$repo/requirements.txt" "$repo/constraints.txt" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ]; then
  step "creating $venv"
  "$python" -m venv "$venv" || fail "python -m venv failed"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  step "installing Python packages (first run: a few minutes)"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "pip==24.3.1" || fail "pip upgrade failed"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    -r "$repo/requirements.txt" -c "$repo/constraints.txt" || fail "pip install -r requirements.txt failed"
  "$venv/bin/python" -c 'import torch; assert "+cpu" in torch.__version__ or not torch.cuda.is_available()' \
    || fail "torch is not the CPU build"
  "$venv/bin/python" -c 'import setuptools, sys; sys.exit(int(setuptools.__version__.split(".")[0]) >= 80)' \
    || fail "setuptools>=80 got installed; colcon-core needs <80"
  # 3. The wheels' CMake exports point at the wheel builder's Python; rewrite them.
  "$venv/bin/python" "$repo/tools/fix_ros_cmake_paths.py" "$venv" || fail "CMake path fix-up failed"
  echo "$want" > "$stamp"
else
  step "Python packages up to date"
fi
step "done. Use: source setup.bash"
