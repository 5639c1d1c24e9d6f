#!/bin/sh
# Install the servers jabberd is compared with (Prosody, ejabberd) from
# Debian, without letting their packaged system services start or grab
# ports: the bench scripts start each one themselves from bench/ configs,
# on their own loopback ports, and stop it afterwards.
set -eu
[ "$(id -u)" = 0 ] || { echo "install-peers.sh: run as root" >&2; exit 1; }

# policy-rc.d exit 101 = "do not start services" for invoke-rc.d (postinst).
policy=/usr/sbin/policy-rc.d
created=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created=1
fi
trap '[ "$created" = 1 ] && rm -f "$policy"' EXIT

apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q prosody ejabberd lua-dbi-sqlite3 || \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q prosody ejabberd

# Belt and braces: should a service have started anyway, stop and disable it.
for svc in ejabberd prosody; do
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl stop "$svc" 2>/dev/null || true
        systemctl disable "$svc" 2>/dev/null || true
    else
        invoke-rc.d --force "$svc" stop 2>/dev/null || service "$svc" stop 2>/dev/null || true
        update-rc.d "$svc" disable 2>/dev/null || true
    fi
done
echo "installed: prosody $(dpkg-query -W -f '${Version}' prosody), ejabberd $(dpkg-query -W -f '${Version}' ejabberd)"
