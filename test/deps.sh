#!/usr/bin/env bash
# Install, as root, the Debian packages aura builds, tests and demos with.
# Quiet and quick when everything is present already.
set -euo pipefail
pkgs="postgresql-15 postgresql-server-dev-15 postgresql-contrib libcurl4-openssl-dev
      libssl-dev libipc-run-perl python3 python3-aiosmtpd make gcc openssl"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# the Debian package starts a main cluster; aura's scripts never use it
id postgres >/dev/null
