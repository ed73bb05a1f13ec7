#!/usr/bin/env bash
# Installs the system packages scopecast needs, when they are missing.
#   .ci/deps.sh demo   what building and running the station needs
#   .ci/deps.sh janus  the station and Janus (demos/janus-sfu)
#   .ci/deps.sh test   what the whole test suite needs (a superset)
#   .ci/deps.sh PURPOSE --list   prints the package names, installs nothing
# Debian 12 / Ubuntu 24.04 through apt-get (sudo when not root). Elsewhere it
# prints what to install and fails, so a missing component is never silent.
# On Debian 12 it also replaces Mesa 22.3 (its lavapipe leaks about 420 kB a
# frame) with Mesa from bookworm-backports, for the Mesa packages only.
set -euo pipefail
purpose="${1:-demo}"
list_only=false
[ "${2:-}" = "--list" ] && list_only=true

# The demo's GStreamer plugins cover every element the default config uses:
# x264enc (ugly) behind h264parse (bad) for the encoder, avdec_h264 (libav)
# for the trainer's replay; engine/tests/demo_packages.rs derives the element
# names from the code that builds those pipelines and checks each one's
# package against this list.
demo_packages=(
    pkg-config gcc g++ libc6-dev nasm
    libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
    libvulkan1 mesa-vulkan-drivers
    libx11-6 libx11-xcb1 libxcursor1 libxrandr2 libxi6 libxkbcommon-x11-0
)
test_packages=(
    "${demo_packages[@]}"
    libgstreamer-plugins-bad1.0-dev
    gstreamer1.0-tools gstreamer1.0-nice gstreamer1.0-plugins-base-apps
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
    *) echo "usage: $0 demo|janus|test [--list]" >&2; exit 2 ;;
esac
if $list_only; then
    printf '%s\n' "${wanted[@]}"
    exit 0
fi

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
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
fi
as_root() {
    if [ "${#sudo[@]}" -gt 0 ] && ! command -v sudo >/dev/null 2>&1; then
        echo "scopecast: not root and no sudo; run as root: $*" >&2
        exit 1
    fi
    "${sudo[@]}" "$@"
}
export DEBIAN_FRONTEND=noninteractive
# apt's progress goes to a log, shown only when something fails.
apt_log="$(mktemp "${TMPDIR:-/tmp}/scopecast-apt.XXXXXX")"
trap 'rm -f "$apt_log"' EXIT
quietly() {
    if ! as_root "$@" >"$apt_log" 2>&1; then
        cat "$apt_log" >&2
        echo "scopecast: '$*' failed (above)" >&2
        exit 1
    fi
}
if [ "${#missing[@]}" -gt 0 ]; then
    echo "scopecast: installing ${missing[*]}" >&2
    quietly apt-get update -qq
    quietly apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Debian 12's Mesa 22.3 lavapipe leaks about 420 kB per compose draw (a
# station without a GPU grew 832 MB a minute); Mesa 25 from bookworm-backports
# stays flat. Only the Mesa packages come from backports.
codename="$( . /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")"
mesa_version="$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)"
if [ "$codename" = "bookworm" ] && [ -n "$mesa_version" ] && dpkg --compare-versions "$mesa_version" lt 23; then
    echo "scopecast: Mesa $mesa_version's lavapipe (Debian 12) leaks memory on every frame;" >&2
    echo "           installing Mesa from bookworm-backports (mesa-vulkan-drivers and its Mesa libraries only)" >&2
    backports=/etc/apt/sources.list.d/scopecast-bookworm-backports.sources
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        # The mirror the system already uses for bookworm (deb822 or one-line format).
        mirror="$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
        [ -n "$mirror" ] || mirror="$(awk '/^deb / && $0 ~ / bookworm / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
        [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
        printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$mirror" | as_root tee "$backports" >/dev/null
    fi
    quietly apt-get update -qq
    quietly apt-get install -y -qq --no-install-recommends -t bookworm-backports mesa-vulkan-drivers
    echo "scopecast: Mesa $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers) installed" >&2
fi
