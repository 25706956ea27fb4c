#!/bin/sh
# `make image-rootfs`: what the Dockerfile does, without a Docker engine.
#
#  1. build context: the paths .dockerignore lets through, from the work tree;
#  2. build stage: etc/container/build-venv.sh into ROOTFS/opt/venv with a
#     clean Python (Debian's /usr/bin/python3, never a pyenv shim);
#  3. final stage: the venv and /etc/kdns/Corefile, no sources;
#  4. make the tree read-only (root-owned, no write bits), then start kdns
#     from it as uid 65532 with the image's environment, query it over UDP
#     and TCP, probe /health, /ready and /metrics, stop it, and fail if any
#     file in the tree changed or Twisted complained about its plugin cache.
#
# ROOTFS (default: a new directory under /tmp) is removed unless KEEP=1.
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-/usr/bin/python3}
rootfs=${ROOTFS:-$(mktemp -d /tmp/kdns-rootfs.XXXXXX)}
keep=${KEEP:-0}
runas=65532
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    if [ "$keep" != 1 ]; then chmod -R u+w "$rootfs" 2>/dev/null || true; rm -rf "$rootfs"; fi
}
trap cleanup EXIT

echo "== context (from .dockerignore)"
ctx="$rootfs/src"
mkdir -p "$ctx"
grep '^!' "$repo/.dockerignore" | sed 's/^!//; s,/$,,' | while read -r path; do
    if [ -e "$repo/$path" ]; then
        mkdir -p "$ctx/$(dirname "$path")"
        cp -a "$repo/$path" "$ctx/$path"
    fi
done
find "$ctx" \( -name __pycache__ -o -name '*.pyc' -o -name dropin.cache -o -name '*.egg-info' \) -prune -exec rm -rf {} +
echo "== build stage"
sh "$ctx/etc/container/build-venv.sh" "$ctx" "$rootfs/opt/venv" "$python"
echo "== final stage"
mkdir -p "$rootfs/etc/kdns"
cp "$ctx/etc/Corefile.cluster" "$rootfs/etc/kdns/Corefile"
rm -rf "$ctx"

echo "== read-only copy"
ports=$("$python" -c '
import socket
socks = []
for _ in range(4):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))')
set -- $ports
dns=$1 health=$2 ready=$3 metrics=$4
mkdir -p "$rootfs/etc/kdns-smoke"
available() { "$rootfs/opt/venv/bin/python" -c "import sys; from twisted_kdns.registry import available; sys.exit(0 if available('$1') else 1)"; }
{
    echo ".:$dns {"
    echo "    bind 127.0.0.1"
    echo "    errors"
    available health && echo "    health 127.0.0.1:$health"
    available ready && echo "    ready 127.0.0.1:$ready"
    available prometheus && echo "    prometheus 127.0.0.1:$metrics"
    echo "    hosts {"
    echo "        10.65.53.2 image.example.org"
    echo "    }"
    echo "}"
} > "$rootfs/etc/kdns-smoke/Corefile"
if [ "$(id -u)" = 0 ]; then
    chown -R root:root "$rootfs"
    as_user="setpriv --reuid=$runas --regid=$runas --clear-groups"
else
    echo "not root: running as $(id -u) instead of $runas" >&2
    as_user=
fi
chmod -R a-w "$rootfs"
chmod a+rx "$rootfs"
snapshot() { find "$rootfs" -printf '%p %s %T@ %m\n' | sort; }
snapshot > /tmp/kdns-rootfs-before.$$

echo "== run as uid $runas on the read-only copy (dns :$dns)"
log=$(mktemp /tmp/kdns-rootfs-log.XXXXXX)
# The image's ENV, nothing else (env -i): PATH, PYTHONDONTWRITEBYTECODE.
env -i PATH="$rootfs/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/nonexistent \
    $as_user kdns --corefile "$rootfs/etc/kdns-smoke/Corefile" > "$log" 2>&1 &
pid=$!
status=1
for _ in $(seq 100); do
    answer=$(dig @127.0.0.1 -p "$dns" +short +time=1 +tries=1 image.example.org A 2>/dev/null || true)
    [ "$answer" = 10.65.53.2 ] && { status=0; break; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
fail() { echo "image-rootfs: FAIL: $*" >&2; cat "$log" >&2; exit 1; }
[ $status = 0 ] || fail "no UDP answer"
echo "udp: $answer"
tcp=$(dig @127.0.0.1 -p "$dns" +tcp +short +time=2 +tries=1 image.example.org A)
[ "$tcp" = 10.65.53.2 ] || fail "no TCP answer ($tcp)"
echo "tcp: $tcp"
fetch() { "$python" -c "import sys, urllib.request; r = urllib.request.urlopen(sys.argv[1], timeout=3); print(r.status, r.read().decode()[:60].replace(chr(10), ' '))" "$1"; }
if available health; then fetch "http://127.0.0.1:$health/health" || fail "/health"; fi
if available ready; then
    for _ in $(seq 50); do fetch "http://127.0.0.1:$ready/ready" 2>/dev/null && break; sleep 0.1; done
fi
if available prometheus; then
    fetch "http://127.0.0.1:$metrics/metrics" | grep -q '^200' || fail "/metrics"
    echo "metrics: 200"
fi
ps -o user=,pid=,args= -p "$pid" || true
kill -TERM "$pid"
wait "$pid" || true
pid=
snapshot > /tmp/kdns-rootfs-after.$$
if ! diff -u /tmp/kdns-rootfs-before.$$ /tmp/kdns-rootfs-after.$$; then
    rm -f /tmp/kdns-rootfs-before.$$ /tmp/kdns-rootfs-after.$$
    fail "the read-only tree changed"
fi
rm -f /tmp/kdns-rootfs-before.$$ /tmp/kdns-rootfs-after.$$
if grep -q -i -e "Unable to write" -e "Traceback" -e "Permission denied" "$log"; then fail "write attempt or traceback in the log"; fi
echo "== image Corefile: kdns check /etc/kdns/Corefile"
env -i PATH="$rootfs/opt/venv/bin:/usr/bin:/bin" PYTHONDONTWRITEBYTECODE=1 $as_user \
    kdns check "$rootfs/etc/kdns/Corefile" || fail "the image's Corefile does not pass kdns check"
rm -f "$log"
echo "image-rootfs: OK (venv $(du -sh "$rootfs/opt/venv" | cut -f1))"
