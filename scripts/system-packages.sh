#!/usr/bin/env bash
# Installs the Debian packages the tests need (the dashboard test's Chromium, and whatever the
# Makefile's DEBIAN_PACKAGES lists), only those missing, with apt's progress lines.
# Usage: scripts/system-packages.sh PACKAGE...
# A step that cannot run (not root, no apt, no network) stops with one line saying which and why.
set -uo pipefail

say() { printf 'system packages: %s\n' "$*"; }
fail() { printf 'system packages: %s\n' "$*" >&2; exit 1; }

missing=()
for pkg in "$@"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

command -v apt-get >/dev/null 2>&1 \
    || fail "cannot install ${missing[*]}: no apt-get on this machine (install them with its package manager)"
sudo=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        fail "cannot install ${missing[*]}: not root and no password-less sudo (run: sudo apt-get install ${missing[*]})"
    fi
fi

export DEBIAN_FRONTEND=noninteractive
say "installing ${missing[*]} with apt-get (a minute or two on a fresh machine)"
"${sudo[@]}" apt-get update -q 2>&1 | grep -E --line-buffered '^(Hit|Get|Err|E:)' \
    || fail "cannot install ${missing[*]}: 'apt-get update' failed (no network to Debian's package servers?)"
"${sudo[@]}" apt-get install -y -q --no-install-recommends -o Dpkg::Progress-Fancy=0 "${missing[@]}" 2>&1 \
    | grep -E --line-buffered '^(Get:|Setting up|E:)' \
    || fail "cannot install ${missing[*]}: 'apt-get install' failed (see the lines above)"
for pkg in "${missing[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)
    [[ "$status" == "install ok installed" ]] || fail "cannot install $pkg: apt-get finished but it is not installed"
done
say "installed ${missing[*]}"
