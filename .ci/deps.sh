#!/usr/bin/env bash
# Installs the system packages scopecast needs, when they are missing.
#   .ci/deps.sh demo   what building and running the station needs
#   .ci/deps.sh janus  the station and Janus (demos/janus-sfu)
#   .ci/deps.sh test   what the whole test suite needs (a superset)
# Debian 12 / Ubuntu 24.04 through apt-get (sudo when not root). Elsewhere it
# prints what to install and fails, so a missing component is never silent.
set -euo pipefail
purpose="${1:-demo}"

demo_packages=(
    pkg-config gcc g++ libc6-dev nasm
    libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    libvulkan1 mesa-vulkan-drivers
    libx11-6 libx11-xcb1 libxcursor1 libxrandr2 libxi6 libxkbcommon-x11-0
)
test_packages=(
    "${demo_packages[@]}"
    libgstreamer-plugins-bad1.0-dev gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
    gstreamer1.0-libav gstreamer1.0-tools gstreamer1.0-nice gstreamer1.0-plugins-base-apps
    python3 python3-venv
    chromium nodejs npm
    xvfb xdotool x11-apps
    janus
)
janus_packages=("${demo_packages[@]}" janus python3)
case "$purpose" in
    demo) wanted=("${demo_packages[@]}") ;;
    test) wanted=("${test_packages[@]}") ;;
    janus) wanted=("${janus_packages[@]}") ;;
    *) echo "usage: $0 demo|janus|test" >&2; exit 2 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    if pkg-config --exists gstreamer-1.0 gstreamer-app-1.0 gstreamer-video-1.0 2>/dev/null; then
        echo "scopecast: no apt-get here; GStreamer development files found by pkg-config, going on." >&2
        echo "           Make sure the GStreamer plugins (base, good, bad, ugly, libav) are installed too." >&2
        exit 0
    fi
    cat >&2 <<'MSG'
scopecast: this is not a Debian/Ubuntu system, so the packages cannot be installed for you.
Install GStreamer >= 1.22 with its development files and plugins, and a Vulkan, Metal, DX12
or GL driver (Mesa's lavapipe where there is no GPU), then run this again:
  Fedora:  sudo dnf install gstreamer1-devel gstreamer1-plugins-base-devel gstreamer1-plugins-good \
                gstreamer1-plugins-bad-free gstreamer1-plugins-ugly-free gstreamer1-libav pkgconf-pkg-config gcc-c++ nasm \
                vulkan-loader mesa-vulkan-drivers
  Arch:    sudo pacman -S gstreamer gst-plugins-base gst-plugins-good gst-plugins-bad gst-plugins-ugly gst-libav nasm \
                vulkan-icd-loader vulkan-swrast
  macOS:   brew install gstreamer pkgconf nasm
MSG
    exit 1
fi

missing=()
for package in "${wanted[@]}"; do
    # Node and npm may come from elsewhere (nodesource, nvm): their commands are enough.
    case "$package" in
        nodejs) command -v node >/dev/null 2>&1 && continue ;;
        npm) command -v npm >/dev/null 2>&1 && continue ;;
    esac
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "scopecast: missing packages: ${missing[*]}" >&2
        echo "           run as root: apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    sudo=(sudo)
fi
echo "scopecast: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
