#!/usr/bin/env bash
# Seed 001 re-made with Linux network namespaces instead of Docker containers: three
# "hosts" on a bridge, a nodus node on each with a long name and one cookie, pings that make
# a full mesh, a task run on another node, and a `Node.spawn` that prints on the caller.
# Then everything is torn down (also on failure or Ctrl-C).
#
#   sudo examples/netns_trio.sh            # seed 001 as written: no clustering, hoge pings
#   sudo examples/netns_trio.sh gossip     # seed 000's Gossip across hosts: no list at all
#   sudo examples/netns_trio.sh static     # seed 000's Epmd: each node lists the others
#
# Needs root (CAP_SYS_ADMIN) and iproute2's `ip`. The hosts are 10.77.0.1..3 inside
# namespaces named trio<pid>-1..3, joined by a bridge in a fourth namespace (trio<pid>-sw):
# nothing is added to this machine's own network. NODUS_CLUSTER_BIN overrides the node
# binary (default target/debug/examples/cluster, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

strategy=${1:-none}
case "$strategy" in none | gossip | static) ;; *)
  echo "usage: $0 [none|gossip|static]" >&2
  exit 2
  ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  echo "$0: network namespaces need root: run it with sudo" >&2
  exit 1
fi
command -v ip >/dev/null 2>&1 || {
  echo "$0: needs iproute2's ip command" >&2
  exit 1
}
bin=${NODUS_CLUSTER_BIN:-target/debug/examples/cluster}
if [ ! -x "$bin" ]; then
  cargo build --example cluster
fi

prefix=trio$$
switch=$prefix-sw
names=(hoge fuga piyo)
work=$(mktemp -d)
pids=()
cookie=mycookie

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for ns in "$prefix-1" "$prefix-2" "$prefix-3" "$switch"; do
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The hosts: a bridge without multicast snooping (heartbeats reach every port), and a veth
# from it into each host, whose end is the host's eth0.
ip netns add "$switch"
ip -n "$switch" link add br0 type bridge mcast_snooping 0
ip -n "$switch" link set br0 up
for i in 1 2 3; do
  ip netns add "$prefix-$i"
  ip -n "$switch" link add "p$i" type veth peer name eth0 netns "$prefix-$i"
  ip -n "$switch" link set "p$i" master br0 up
  ip -n "$prefix-$i" addr add "10.77.0.$i/24" dev eth0
  ip -n "$prefix-$i" link set eth0 up
  ip -n "$prefix-$i" link set lo up
done
echo "hosts: $prefix-1 (10.77.0.1), $prefix-2 (10.77.0.2), $prefix-3 (10.77.0.3) on a bridge in $switch"

node() { echo "${names[$1 - 1]}@10.77.0.$1"; }
hoge=$(node 1) fuga=$(node 2) piyo=$(node 3)

# What each host's node is told besides its name: how it finds the others.
strategy_args() {
  local i=$1
  case "$strategy" in
    none) echo "--strategy none" ;;
    gossip) echo "--multicast-if 10.77.0.$i" ;;
    static)
      local hosts=()
      for j in 1 2 3; do [ "$j" = "$i" ] || hosts+=("$(node "$j")"); done
      echo "--strategy static --hosts $(
        IFS=,
        echo "${hosts[*]}"
      )"
      ;;
  esac
}

# Waits up to 20 s for a line containing $2 in host $1's output.
wait_for() {
  local i=$1 text=$2
  for _ in $(seq 1 200); do
    grep -qsF -- "$text" "$work/$i.out" && return 0
    if ! kill -0 "${pids[$((i - 1))]}" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  echo "$(node "$i") never printed: $text" >&2
  cat "$work/$i.out" "$work/$i.err" >&2
  exit 1
}

commands=()
# Starts host $1's node with the extra arguments that follow, and waits until it is up.
start() {
  local i=$1
  shift
  # shellcheck disable=SC2046 # strategy_args is words on purpose
  local args=(--name "$(node "$i")" --cookie "$cookie"
    $(strategy_args "$i") --exit-after 60 "$@")
  commands[i]="ip netns exec $prefix-$i $bin ${args[*]}"
  ip netns exec "$prefix-$i" "$bin" "${args[@]}" </dev/null >"$work/$i.out" 2>"$work/$i.err" &
  pids[i - 1]=$!
  wait_for "$i" "node $(node "$i") is up"
}

# With a strategy the nodes mesh by themselves, and do seed 001's requests once they list
# both others; without one, hoge's pings make the mesh, as in the seed.
if [ "$strategy" = none ]; then wait_hoge=0; else wait_hoge=2; fi
start 2
start 3 --wait-for 2 --task "$fuga" --spawn "$fuga"
start 1 --wait-for "$wait_hoge" --ping "$fuga" --ping "$piyo"

wait_for 1 "Node.ping($fuga) = pong"
wait_for 1 "Node.ping($piyo) = pong"
wait_for 1 "Node.list() = [$fuga, $piyo]"
wait_for 2 "Node.list() = [$hoge, $piyo]"
wait_for 3 "Node.list() = [$fuga, $hoge]"
wait_for 3 "task on $fuga: Cluster.hello()"
wait_for 3 "元氣ですかーーーーッ！ (from $fuga)"

# Ctrl-C each node, as one would in its terminal, and give them 10 s to stop (the cleanup
# kills any left).
for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
for _ in $(seq 1 100); do
  alive=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ "$alive" = 0 ] && break
  sleep 0.1
done

for i in 1 2 3; do
  echo
  echo "== terminal $i: $(node "$i") (host $prefix-$i)"
  echo "\$ ${commands[i]}"
  cat "$work/$i.out"
done
