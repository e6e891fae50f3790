#!/usr/bin/env bash
# Builds a local ZooKeeper 3.8 Docker image without any container registry.
#
# The image is a minimal Debian bookworm root filesystem made with debootstrap, with Debian's
# ZooKeeper jars (libzookeeper-java) and a headless JRE, imported with `docker import`. Its
# entrypoint understands the configuration variables of the official `zookeeper` image
# (ZOO_MY_ID, ZOO_SERVERS, ZOO_4LW_COMMANDS_WHITELIST, ZOO_TICK_TIME, ZOO_STANDALONE_ENABLED,
# ZOO_CFG_EXTRA, ...), so the testing kit drives both images the same way.
#
# Usage: scripts/zookeeper-image.sh [--force] [TAG]
#   TAG      image tag (default: $ZK_IMAGE_TAG or zk-recipes/zookeeper:3.8)
#   --force  rebuild even if the tag already exists
# Environment:
#   DEBIAN_MIRROR  Debian mirror (default: the first non-security Debian mirror apt uses here)
#   DEBIAN_SUITE   Debian suite (default: bookworm)
# Needs: root, docker, debootstrap (apt-get install debootstrap).
set -euo pipefail

log() { printf '[zookeeper-image %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

force=0
tag="${ZK_IMAGE_TAG:-zk-recipes/zookeeper:3.8}"
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $arg" ;;
        *) tag="$arg" ;;
    esac
done

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "no Docker daemon answers"
# The image carries the hash of the script that built it, so an image built by an older
# version of this script is rebuilt rather than reused.
script_hash=$(sha256sum "$0" | cut -c1-16)
built_by=$(docker image inspect -f '{{index .Config.Labels "zk-recipes.image-script"}}' "$tag" 2>/dev/null || true)
if [[ $force -eq 0 && $built_by == "$script_hash" ]]; then
    log "image $tag already exists; nothing to do (use --force to rebuild)"
    exit 0
fi
[[ -z $built_by ]] || log "image $tag was built by another version of this script; rebuilding"
[[ $(id -u) -eq 0 ]] || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"

# The mirror apt already uses on this machine (deb822 "URIs:" or one-line "deb" sources),
# skipping security and third-party repositories.
find_debian_mirror() {
    local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
    local f
    for f in "${files[@]}"; do
        [[ -f $f ]] || continue
        grep -hoE '(^URIs:[[:space:]]*|^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)https?://[^[:space:]]+' "$f" \
            | grep -oE 'https?://[^[:space:]]+' \
            | grep -E '/debian/?$' | grep -v security || true
    done | head -n 1
}
mirror="${DEBIAN_MIRROR:-$(find_debian_mirror)}"
mirror="${mirror:-http://deb.debian.org/debian}"
suite="${DEBIAN_SUITE:-bookworm}"

work="$(mktemp -d /tmp/zk-image.XXXXXX)"
rootfs="$work/rootfs"
cleanup() {
    # The JRE's maintainer scripts need /proc; never leave it mounted under a removed tree.
    if mountpoint -q "$rootfs/proc" 2>/dev/null; then umount -l "$rootfs/proc" || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

log "debootstrap $suite (minbase) from $mirror into $rootfs"
debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed"; }

# No documentation, manuals or translations in the image.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/01-nodoc" <<'EOF'
path-exclude=/usr/share/doc/*
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/lintian/*
EOF
cat >"$rootfs/etc/apt/apt.conf.d/01-minimal" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF

log "installing a headless JRE and the ZooKeeper jars"
mount -t proc proc "$rootfs/proc"
# Debian's `zookeeper` package depends on the full (X11) JRE; its jars live in
# libzookeeper-java, which is all the server needs besides a headless JRE.
chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    sh -c 'apt-get update -q && apt-get install -y -q openjdk-17-jre-headless libzookeeper-java libslf4j-java && apt-get clean' \
    >"$work/apt.log" 2>&1 || { tail -n 30 "$work/apt.log" >&2; die "package installation failed"; }
umount "$rootfs/proc"
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/usr/share/doc/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*.log \
    "$rootfs"/var/log/apt/* "$rootfs"/tmp/*
test -f "$rootfs/usr/share/java/zookeeper.jar" || die "zookeeper.jar is missing from the image"

log "adding the entrypoint"
mkdir -p "$rootfs/conf" "$rootfs/data" "$rootfs/datalog" "$rootfs/logs"
cat >"$rootfs/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# Writes zoo.cfg and myid from the official zookeeper image's variables, then runs the command.
set -e
if [ ! -f "$ZOO_CONF_DIR/zoo.cfg" ]; then
    config="$ZOO_CONF_DIR/zoo.cfg"
    mkdir -p "$ZOO_CONF_DIR"
    {
        echo "dataDir=$ZOO_DATA_DIR"
        echo "dataLogDir=$ZOO_DATA_LOG_DIR"
        echo "tickTime=$ZOO_TICK_TIME"
        echo "initLimit=$ZOO_INIT_LIMIT"
        echo "syncLimit=$ZOO_SYNC_LIMIT"
        echo "autopurge.snapRetainCount=$ZOO_AUTOPURGE_SNAPRETAINCOUNT"
        echo "autopurge.purgeInterval=$ZOO_AUTOPURGE_PURGEINTERVAL"
        echo "maxClientCnxns=$ZOO_MAX_CLIENT_CNXNS"
        echo "standaloneEnabled=$ZOO_STANDALONE_ENABLED"
        echo "admin.enableServer=$ZOO_ADMINSERVER_ENABLED"
        for server in ${ZOO_SERVERS:-server.1=localhost:2888:3888;2181}; do
            echo "$server"
        done
        if [ -n "$ZOO_4LW_COMMANDS_WHITELIST" ]; then
            echo "4lw.commands.whitelist=$ZOO_4LW_COMMANDS_WHITELIST"
        fi
        for extra in $ZOO_CFG_EXTRA; do
            echo "$extra"
        done
    } >"$config"
fi
mkdir -p "$ZOO_DATA_DIR" "$ZOO_DATA_LOG_DIR" "$ZOO_LOG_DIR"
if [ ! -f "$ZOO_DATA_DIR/myid" ]; then
    echo "${ZOO_MY_ID:-1}" >"$ZOO_DATA_DIR/myid"
fi
exec "$@"
EOF
# The official image's command is `zkServer.sh start-foreground`; this one does the same.
# Debian's zookeeper.jar manifest omits Netty's codec and resolver, which the TLS client port
# (NettyServerCnxnFactory) needs, so the class path names them.
mkdir -p "$rootfs/usr/local/bin"
cat >"$rootfs/usr/local/bin/zkServer.sh" <<'EOF'
#!/bin/sh
# Runs ZooKeeper in the foreground with $ZOO_CONF_DIR/zoo.cfg (only `start-foreground`).
case "${1:-start-foreground}" in
    start-foreground) ;;
    *) echo "only start-foreground is supported" >&2; exit 2 ;;
esac
exec java $JVMFLAGS -Dzookeeper.log.dir="$ZOO_LOG_DIR" \
    -cp "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar:/usr/share/java/netty-codec.jar:/usr/share/java/netty-resolver.jar" \
    -Dorg.slf4j.simpleLogger.showDateTime=true \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$ZOO_CONF_DIR/zoo.cfg"
EOF
chmod 0755 "$rootfs/docker-entrypoint.sh" "$rootfs/usr/local/bin/zkServer.sh"

log "importing the root filesystem as $tag"
tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV ZOO_CONF_DIR=/conf ZOO_DATA_DIR=/data ZOO_DATA_LOG_DIR=/datalog ZOO_LOG_DIR=/logs' \
    --change 'ENV ZOO_TICK_TIME=2000 ZOO_INIT_LIMIT=5 ZOO_SYNC_LIMIT=2 ZOO_AUTOPURGE_PURGEINTERVAL=0' \
    --change 'ENV ZOO_AUTOPURGE_SNAPRETAINCOUNT=3 ZOO_MAX_CLIENT_CNXNS=60 ZOO_STANDALONE_ENABLED=true' \
    --change 'ENV ZOO_ADMINSERVER_ENABLED=true JVMFLAGS=-Xmx256m' \
    --change 'EXPOSE 2181 2281 2888 3888 8080' \
    --change "LABEL zk-recipes.image-script=$script_hash" \
    --change 'WORKDIR /' \
    --change 'ENTRYPOINT ["/docker-entrypoint.sh"]' \
    --change 'CMD ["zkServer.sh", "start-foreground"]' \
    - "$tag" >/dev/null
log "built $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MiB", $1/1048576}'))"
