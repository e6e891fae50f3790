#!/usr/bin/env bash
# Runs zk-recipes' tests against real ZooKeeper servers.
#
#  1. Installs what a fresh Debian/Ubuntu machine lacks (apt): ZooKeeper's jars and a JRE (the
#     process backend), Curator's jars, recipes and discovery (Java interoperability tests), debootstrap (the image).
#  2. When a Docker daemon answers, builds the local ZooKeeper image without any registry
#     (scripts/zookeeper-image.sh; skipped when it exists) unless ZK_TEST_IMAGE names another.
#  3. Runs the testing kit's own tests on both backends, docker and process.
#  4. Runs the whole suite on the process backend (a JVM starts faster than a container).
#
# Usage: scripts/test.sh [ARGS...]   ARGS go to every `cargo test` (e.g. `-- --nocapture`).
# Environment: ZK_TEST_IMAGE (default zk-recipes/zookeeper:3.8), RUST_LOG, CARGO_TARGET_DIR.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '\n==> [%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        warn "not root and no sudo: cannot run $*"
        return 1
    fi
}

install_missing_packages() {
    local missing=()
    [[ -f /usr/share/java/zookeeper.jar || -n ${ZOOKEEPER_HOME:-} ]] || missing+=(zookeeper)
    command -v java >/dev/null || missing+=(default-jre-headless)
    [[ -f /usr/share/java/curator-recipes.jar ]] || missing+=(libcurator-recipes-java)
    [[ -f /usr/share/java/curator-x-discovery.jar ]] || missing+=(libcurator-discovery-java)
    command -v debootstrap >/dev/null || [[ -x /usr/sbin/debootstrap ]] || missing+=(debootstrap)
    if [[ ${#missing[@]} -eq 0 ]]; then
        log "system packages present"
        return
    fi
    if ! command -v apt-get >/dev/null; then
        warn "missing ${missing[*]} and no apt-get; install them by hand"
        return
    fi
    log "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

docker_answers() {
    command -v docker >/dev/null && docker info >/dev/null 2>&1
}

started=$SECONDS
install_missing_packages

local_image=zk-recipes/zookeeper:3.8
image=${ZK_TEST_IMAGE:-$local_image}
docker_backend=0
if docker_answers; then
    docker_backend=1
    if [[ $image == "$local_image" ]]; then
        log "building $image if missing (scripts/zookeeper-image.sh)"
        as_root scripts/zookeeper-image.sh "$image"
    fi
else
    warn "no Docker daemon answers: skipping the docker backend"
fi

log "testing kit on the process backend"
ZK_TEST_BACKEND=process cargo test --all-features --test testing_kit "$@"

if [[ $docker_backend -eq 1 ]]; then
    log "testing kit on the docker backend ($image)"
    ZK_TEST_BACKEND=docker ZK_TEST_IMAGE=$image cargo test --all-features --test testing_kit "$@"
fi

log "whole suite on the process backend"
ZK_TEST_BACKEND=process cargo test --all-features "$@"

log "all tests passed in $((SECONDS - started)) s"
