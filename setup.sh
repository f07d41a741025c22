#!/usr/bin/env bash
# One-step set-up on a fresh Debian/Ubuntu machine with Python >= 3.10:
#   * system libraries: FFmpeg shared libraries (torchcodec decodes audio with them; `datasets` >= 4 uses torchcodec),
#     python3-venv when missing, and Chromium + its driver for the Space's browser test (--no-browser skips them);
#   * a virtual environment in .venv with hf-alm installed in editable mode with the [dev] extras.
# Idempotent: a second run only checks. Usage: ./setup.sh [--no-browser] [--no-dev]
set -euo pipefail
cd "$(dirname "$0")"

browser=1
extras="[dev]"
for arg in "$@"; do
  case "$arg" in
    --no-browser) browser=0 ;;
    --no-dev) extras=""; browser=0 ;;
    -h|--help) sed -n 2,8p "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

PYTHON=${PYTHON:-python3}
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

apt_packages=()
ldconfig -p 2>/dev/null | grep -q 'libavcodec\.so' || apt_packages+=(ffmpeg)
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || apt_packages+=(python3-venv)
if [ "$browser" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || apt_packages+=(chromium-driver)
fi
if [ ${#apt_packages[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup.sh: installing system packages: ${apt_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -q "${apt_packages[@]}" >/dev/null 2>&1 || {
      $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q "${apt_packages[@]}" >/dev/null; }
  else
    echo "setup.sh: please install ${apt_packages[*]} with your system's package manager" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup.sh: creating .venv"
  "$PYTHON" -m venv .venv
fi
echo "setup.sh: installing hf-alm${extras} into .venv"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e ".${extras}"
echo "setup.sh: ready. Activate with: source .venv/bin/activate"
