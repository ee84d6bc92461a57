#!/usr/bin/env bash
# Installs what the Android checks need (tests/test_android.py, tests/test_bundle.py) on a fresh
# Debian/Ubuntu machine, as root. Idempotent: re-running installs nothing new.
#
#   aapt2 (package aapt), zipalign, apksigner, framework-res.apk (android-framework-res)
#   a JDK (java, keytool) when java is missing
#   node + npm when npm is missing, then the Kotlin compiler from the npm package
#   kotlin-compiler into .ci/.tools/node_modules/kotlin-compiler/bin/kotlinc (git-ignored),
#   where the tests look for it (also: $EDGECNN_KOTLINC, kotlinc on PATH, the global npm prefix).
#
# Usage: .ci/android-deps.sh            (from anywhere; paths are relative to the repository)
set -euo pipefail

KOTLIN_VERSION="2.4.20"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.ci/.tools"
export DEBIAN_FRONTEND=noninteractive

say() { printf '[android-deps] %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        say "run as root (or install sudo): apt-get is needed"; exit 1
    fi
fi

need=()
command -v aapt2 >/dev/null 2>&1 || need+=(aapt)
command -v zipalign >/dev/null 2>&1 || need+=(zipalign)
command -v apksigner >/dev/null 2>&1 || need+=(apksigner)
[ -f /usr/share/android-framework-res/framework-res.apk ] || need+=(android-framework-res)
{ command -v java >/dev/null 2>&1 && command -v keytool >/dev/null 2>&1; } || need+=(default-jdk-headless)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)

if [ "${#need[@]}" -gt 0 ]; then
    say "apt-get install ${need[*]}"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
    say "Android build tools already installed"
fi

have_version="$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' \
    "$TOOLS/node_modules/kotlin-compiler/package.json" 2>/dev/null | head -n1 || true)"
if [ "$have_version" != "$KOTLIN_VERSION" ]; then
    say "npm install kotlin-compiler@$KOTLIN_VERSION into .ci/.tools"
    mkdir -p "$TOOLS"
    npm install --prefix "$TOOLS" --no-audit --no-fund --no-save --loglevel=error \
        "kotlin-compiler@$KOTLIN_VERSION" >/dev/null
else
    say "kotlin-compiler $KOTLIN_VERSION already in .ci/.tools"
fi

KOTLINC="$TOOLS/node_modules/kotlin-compiler/bin/kotlinc"
chmod +x "$TOOLS/node_modules/kotlin-compiler/bin/"* 2>/dev/null || true
for tool in aapt2 zipalign apksigner keytool java "$KOTLINC"; do
    command -v "$tool" >/dev/null 2>&1 || { say "missing after install: $tool"; exit 1; }
done
say "ready: $(aapt2 version 2>&1 | head -n1); $(java -version 2>&1 | head -n1); kotlinc $KOTLIN_VERSION at .ci/.tools/node_modules/kotlin-compiler/bin/kotlinc"
