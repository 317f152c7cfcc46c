# test/lib.sh — sourced by the test, demo and bench scripts (never as root).
# Builds aura strictly and installs it into tmp_install/, a private copy of
# the system's PostgreSQL installation; exports PG_BIN, PGXS_DIR and PATH.

PG_CONFIG_SYS=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
[ -x "$PG_CONFIG_SYS" ] || PG_CONFIG_SYS=$(command -v pg_config)
PGXS_DIR=$(cd "$(dirname "$("$PG_CONFIG_SYS" --pgxs)")/../.." && pwd)   # .../lib/pgxs
TMP_INSTALL=$PWD/tmp_install

# aura_build: strict build, then a fresh private installation with aura in it
aura_build() {
    local bindir sharedir pkglibdir
    make -s PG_CONFIG="$PG_CONFIG_SYS" clean >/dev/null 2>&1
    if ! make -s PG_CONFIG="$PG_CONFIG_SYS" warn >"$PWD/build.log" 2>&1; then
        cat "$PWD/build.log"; echo "build failed"; return 1
    fi
    grep -v '^make' "$PWD/build.log" | grep -q . && cat "$PWD/build.log"
    bindir=$("$PG_CONFIG_SYS" --bindir)
    sharedir=$("$PG_CONFIG_SYS" --sharedir)
    pkglibdir=$("$PG_CONFIG_SYS" --pkglibdir)
    rm -rf "$TMP_INSTALL"
    mkdir -p "$TMP_INSTALL"
    for d in "$(dirname "$bindir")" "$sharedir" "$pkglibdir"; do
        [ -d "$TMP_INSTALL$d" ] && continue
        mkdir -p "$TMP_INSTALL$d" && cp -a "$d/." "$TMP_INSTALL$d/" || return 1
    done
    PG_BIN=$TMP_INSTALL$bindir
    make -s PG_CONFIG="$PG_CONFIG_SYS" install DESTDIR="$TMP_INSTALL" >/dev/null || return 1
    export PG_BIN PATH="$PG_BIN:$PATH"
    # the private copy must be the one that answers
    [ "$("$PG_BIN/pg_config" --sharedir)" = "$TMP_INSTALL$sharedir" ] || {
        echo "private installation is not relocatable"; return 1; }
}

# free_port: a TCP port nobody listens on
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$(( 20000 + RANDOM % 30000 ))
        (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo $p; return; }
    done
    echo 54329
}
