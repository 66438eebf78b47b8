#!/bin/sh
# deps.sh - install the Debian packages cliplens needs to build, test and demo.
# Runs apt-get directly as root, through sudo otherwise; on non-Debian systems
# it names the packages and stops.
set -e
PKGS="build-essential pkg-config clang libopenblas-dev libpng-dev libjpeg-dev libzstd-dev zstd \
libmsgpack-dev libcjson-dev libutf8proc-dev \
python3 python3-torch python3-numpy python3-pil python3-msgpack python3-zstandard python3-regex"
missing=""
if command -v dpkg-query >/dev/null 2>&1; then
    for p in $PKGS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
else
    echo "deps: this is not a Debian-like system; install the equivalents of:" >&2
    echo "  $PKGS" >&2
    exit 1
fi
if [ -z "$missing" ]; then
    echo "deps: all packages present"
else
    echo "deps: installing:$missing"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "deps: not root and no sudo; as root run: apt-get install$missing" >&2; exit 1; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

# Real photographs for the preprocessing parity tests: Debian's python3-skimage
# ships some (astronaut, coffee, ...).  Its .deb is unpacked into build/photos,
# not installed (it would pull in scipy and matplotlib).  Optional: without it
# those tests print SKIP.
cd "$(dirname "$0")/.."
if [ ! -f build/photos/usr/lib/python3/dist-packages/skimage/data/astronaut.png ]; then
    mkdir -p build/photos
    if (cd build/photos && apt-get download -qq python3-skimage >/dev/null 2>&1 &&
        dpkg-deb -x python3-skimage_*.deb . && rm -f python3-skimage_*.deb); then
        echo "deps: unpacked python3-skimage's photographs into build/photos"
    else
        echo "deps: could not fetch python3-skimage's photographs; photo parity tests will SKIP" >&2
    fi
fi
