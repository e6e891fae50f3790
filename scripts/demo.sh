#!/usr/bin/env bash
# Runs the two leader-election demo programs against a local ZooKeeper: the classic five-client
# LeaderLatch program, then the classic three-client LeaderSelector program.
#
# They connect to ZK_CONNECT (default 127.0.0.1:2181); when nothing answers there they start a
# test ZooKeeper themselves, from Debian's `zookeeper` package (installed here when missing).
# Usage: scripts/demo.sh [--scale F]   (default 0.25: the programs' 30 s runs in about 8 s)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -z ${ZK_CONNECT:-} && ! -f /usr/share/java/zookeeper.jar && -z ${ZOOKEEPER_HOME:-} ]] && command -v apt-get >/dev/null; then
    echo "==> installing ZooKeeper and a JRE from Debian's packages" >&2
    sudo_or_not=(); [[ $(id -u) -eq 0 ]] || sudo_or_not=(sudo)
    "${sudo_or_not[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo_or_not[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends zookeeper default-jre-headless
fi

args=("$@")
[[ ${#args[@]} -gt 0 ]] || args=(--scale 0.25)
export ZK_TEST_BACKEND=${ZK_TEST_BACKEND:-process}
echo "==> LeaderLatch: five clients race for one latch (TestLeaderLatch)" >&2
cargo run --quiet --example leader_latch -- "${args[@]}"
echo "==> LeaderSelector: three clients take turns (TestLeaderElection)" >&2
cargo run --quiet --example leader_selector -- "${args[@]}"
