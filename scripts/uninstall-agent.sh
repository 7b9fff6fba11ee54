#!/usr/bin/env bash
# Removes what scripts/install-agent.sh installed (run as root):
#   scripts/uninstall-agent.sh [--prefix /usr/local] [--root /] [--purge]
# Keeps /etc/distrunner (keys, certificates, agent.yaml) unless --purge is given, which
# also removes the run-as user and group that install-agent.sh created (and no other).
set -euo pipefail

ROOT="${DESTDIR:-/}"
PREFIX=/usr/local
PURGE=no

die() { printf 'uninstall-agent: %s\n' "$*" >&2; exit 1; }
say() { printf 'uninstall-agent: %s\n' "$*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
    --purge) PURGE=yes; shift ;;
    -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[ "$(id -u)" = 0 ] || die "run as root"
ROOT="${ROOT%/}"
UNIT="$ROOT/etc/systemd/system/distrunner-agent.service"

if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
  say "systemctl disable --now distrunner-agent"
  systemctl disable --now distrunner-agent || true
fi
if [ -e "$UNIT" ]; then
  say "removing $UNIT"
  rm -f "$UNIT"
  [ -z "$ROOT" ] && [ -d /run/systemd/system ] && systemctl daemon-reload
fi
if [ -d "$ROOT$PREFIX/lib/node_modules/distrunner" ]; then
  say "removing the package from $ROOT$PREFIX"
  npm uninstall --global --prefix "$ROOT$PREFIX" --no-audit --no-fund distrunner >/dev/null
fi
if [ "$PURGE" = yes ]; then
  CREATED="$ROOT/etc/distrunner/created-by-installer"
  if [ -z "$ROOT" ] && [ -f "$CREATED" ]; then
    while read -r kind name; do
      [ "$kind" = user ] || continue
      case "$name" in [a-z_][a-z0-9_-]*) ;; *) say "skipping invalid user name '$name' in $CREATED"; continue ;; esac
      if getent passwd "$name" >/dev/null; then
        say "removing user $name (created by install-agent.sh)"
        userdel "$name"
      fi
      # userdel removes the user's own group only under USERGROUPS_ENAB; the installer made it.
      if getent group "$name" >/dev/null && [ -z "$(getent group "$name" | cut -d: -f4)" ]; then
        say "removing group $name"
        groupdel "$name"
      fi
    done < "$CREATED"
  fi
  say "removing $ROOT/etc/distrunner (keys, certificates, configuration)"
  rm -rf "$ROOT/etc/distrunner"
else
  say "kept $ROOT/etc/distrunner (keys, certificates, configuration); --purge removes it"
fi
say "done"
