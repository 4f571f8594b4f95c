#!/usr/bin/env bash
# Install the Debian packages the test suite talks to, only when they are missing.
# A fresh CI machine has Python alone; a developer's machine usually has them already.
set -euo pipefail
need=()
# Each argument is WHAT:PACKAGE; WHAT is a command, or an absolute path (a plugin) that must exist.
for pkg in "$@"; do
  what="${pkg%%:*}"
  if [[ "$what" == /* ]]; then
    [ -e "$what" ] || need+=("${pkg#*:}")
  else
    command -v "$what" >/dev/null 2>&1 || need+=("${pkg#*:}")
  fi
done
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
  echo "system-deps: missing ${need[*]} and cannot apt-get install without root; install them yourself" >&2
  exit 1
fi
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "system-deps: installing ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
