#!/usr/bin/env bash
# Installs distrunner-agent on this host (run as root):
#   scripts/install-agent.sh --bundle DIR [--package TGZ|NAME] [--prefix /usr/local]
#                            [--root /] [--run-as USER] [--no-start]
# --bundle   an agent bundle from `distrun certs agent NAME` (agent.crt, agent.key, ca.crt;
#            crl.pem and token are copied too when present)
# --package  what `npm install --global` installs: a tarball made by `npm pack`, or a
#            registry name (default: distrunner)
# --prefix   where the package goes (default /usr/local: /usr/local/bin/distrunner-agent)
# --root     install under this directory instead of / (like DESTDIR; $DESTDIR works too):
#            nothing outside it is touched, no user is created, systemd is not called
# --run-as   run commands as this user (created as a system user if missing), written
#            into a new agent.yaml as runAs
# --no-start do not call systemctl
# Prints every step. An existing /etc/distrunner/agent.yaml is never overwritten.
set -euo pipefail

ROOT="${DESTDIR:-/}"
PREFIX=/usr/local
PACKAGE=distrunner
BUNDLE=
RUN_AS=
START=yes

die() { printf 'install-agent: %s\n' "$*" >&2; exit 1; }
say() { printf 'install-agent: %s\n' "$*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) BUNDLE="${2:?--bundle needs a directory}"; shift 2 ;;
    --package) PACKAGE="${2:?--package needs a tarball or name}"; shift 2 ;;
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
    --run-as) RUN_AS="${2:?--run-as needs a user name}"; shift 2 ;;
    --no-start) START=no; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

[ -n "$BUNDLE" ] || die "--bundle DIR is required (make one with: distrun certs agent NAME --ip IP)"
for f in agent.crt agent.key ca.crt; do
  [ -f "$BUNDLE/$f" ] || die "$BUNDLE/$f is missing: not an agent bundle from 'distrun certs agent'"
done
[ "$(id -u)" = 0 ] || die "run as root (the agent's files belong to root)"
case "$RUN_AS" in ''|[a-z_][a-z0-9_-]*) ;; *) die "invalid user name '$RUN_AS'" ;; esac
ROOT="${ROOT%/}"
ETC="$ROOT/etc/distrunner"
UNIT_DIR="$ROOT/etc/systemd/system"
BIN="$ROOT$PREFIX/bin/distrunner-agent"

say "installing $PACKAGE into $ROOT$PREFIX"
[ -f "$PACKAGE" ] && PACKAGE="$(cd "$(dirname "$PACKAGE")" && pwd)/$(basename "$PACKAGE")"
npm install --global --prefix "$ROOT$PREFIX" --no-audit --no-fund --prefer-offline "$PACKAGE" >/dev/null
[ -x "$BIN" ] || die "the package did not install $BIN"
PKG_DIR="$ROOT$PREFIX/lib/node_modules/distrunner"

say "installing the agent bundle into $ETC (directory 0750, key 0600)"
install -d -m 0750 -o root -g root "$ETC"

if [ -n "$RUN_AS" ] && ! getent passwd "$RUN_AS" >/dev/null; then
  if [ -z "$ROOT" ]; then
    say "creating system user $RUN_AS (and its group)"
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$RUN_AS"
    # uninstall-agent.sh --purge removes what is listed here, and nothing else.
    printf 'user %s\n' "$RUN_AS" >> "$ETC/created-by-installer"
  else
    say "not creating user $RUN_AS under --root: create it on the target host"
  fi
fi
install -m 0644 -o root -g root "$BUNDLE/ca.crt" "$ETC/ca.crt"
install -m 0644 -o root -g root "$BUNDLE/agent.crt" "$ETC/agent.crt"
install -m 0600 -o root -g root "$BUNDLE/agent.key" "$ETC/agent.key"
[ -f "$BUNDLE/crl.pem" ] && install -m 0644 -o root -g root "$BUNDLE/crl.pem" "$ETC/crl.pem"
[ -f "$BUNDLE/token" ] && install -m 0600 -o root -g root "$BUNDLE/token" "$ETC/token"

if [ -e "$ETC/agent.yaml" ]; then
  say "kept the existing $ETC/agent.yaml"
else
  say "writing $ETC/agent.yaml"
  umask 0027
  {
    echo "# Written by install-agent.sh. Every setting is documented in"
    echo "# $PREFIX/lib/node_modules/distrunner/config/agent.yaml."
    echo "# Paths are relative to this file. Reload after changes: systemctl reload distrunner-agent"
    echo "host: 0.0.0.0"
    echo "port: 6789"
    echo "ca: ca.crt"
    echo "cert: agent.crt"
    echo "key: agent.key"
    if [ -f "$ETC/crl.pem" ]; then echo "crl: crl.pem"; else echo "# crl: crl.pem"; fi
    if [ -f "$ETC/token" ]; then echo "tokenFile: token"; else echo "# tokenFile: token"; fi
    if [ -n "$RUN_AS" ]; then echo "runAs: $RUN_AS"; else echo "# runAs: distrunner"; fi
    echo "logLevel: info"
  } > "$ETC/agent.yaml"
  chmod 0640 "$ETC/agent.yaml"
fi

say "checking the configuration"
"$BIN" --config "$ETC/agent.yaml" --check-config

say "installing the systemd unit $UNIT_DIR/distrunner-agent.service"
install -d -m 0755 "$UNIT_DIR"
sed "s#/usr/local#$PREFIX#g" "$PKG_DIR/systemd/distrunner-agent.service" > "$UNIT_DIR/distrunner-agent.service"
chmod 0644 "$UNIT_DIR/distrunner-agent.service"

if [ -z "$ROOT" ] && [ "$START" = yes ] && [ -d /run/systemd/system ]; then
  say "systemctl daemon-reload && systemctl enable --now distrunner-agent"
  systemctl daemon-reload
  systemctl enable --now distrunner-agent
  systemctl --no-pager --lines=0 status distrunner-agent || true
else
  say "not starting it (systemd not running here, --root or --no-start); to start: systemctl enable --now distrunner-agent"
fi
say "done"
