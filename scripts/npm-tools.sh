#!/usr/bin/env bash
# Installs the npm packages the tests start for real (Azurite, Microsoft's Azure Storage emulator,
# for the datastore tests) into a project-local folder, only when missing, with npm's progress.
# Usage: scripts/npm-tools.sh FOLDER PACKAGE@VERSION...
# A step that cannot run (no npm, no network) stops with one line saying which and why.
set -uo pipefail

say() { printf 'npm tools: %s\n' "$*"; }
fail() { printf 'npm tools: %s\n' "$*" >&2; exit 1; }

folder=$1; shift
missing=()
for spec in "$@"; do
    name=${spec%@*}
    want=${spec##*@}
    have=$(node -p "require('./$folder/node_modules/$name/package.json').version" 2>/dev/null)
    [[ "$have" == "$want" ]] || missing+=("$spec")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

command -v npm >/dev/null 2>&1 \
    || fail "cannot install ${missing[*]}: no npm on this machine (install Node.js 18 or newer, e.g. apt-get install npm)"
mkdir -p "$folder" || fail "cannot install ${missing[*]}: cannot create $folder"
say "installing ${missing[*]} into $folder with npm (a minute on a fresh machine)"
# npm's http log has a line per package fetched: count them for progress, keep its errors whole
npm install --prefix "$folder" --no-save --no-audit --no-fund --loglevel=http "${missing[@]}" 2>&1 \
    | awk '/^npm http fetch/ { if (++n % 100 == 0) { printf "npm tools: fetched %d packages\n", n; fflush() } next }
           /^(added|npm (ERR|error))/ { print; fflush() }'
for spec in "${missing[@]}"; do
    name=${spec%@*}
    want=${spec##*@}
    have=$(node -p "require('./$folder/node_modules/$name/package.json').version" 2>/dev/null)
    [[ "$have" == "$want" ]] \
        || fail "cannot install $spec: npm did not install it into $folder (no network to the npm registry? see the lines above)"
done
say "installed ${missing[*]} into $folder"
