#!/bin/sh
# Starts redis-server (`start.sh redis`) or redis-sentinel (`start.sh sentinel`)
# in a pod of the sipwake-redis StatefulSet. The primary is whoever the
# Sentinels name; when none answers (first start of the set) pod 0 is.
set -eu
role=$1
set_name=sipwake-redis
service=sipwake-redis          # the headless Service: <pod>.<service> resolves
master=sipwake                 # the Sentinel master name in the services' URL
me="$(hostname).$service"

primary=""
for i in 0 1 2; do
  answer=$(timeout 3 redis-cli -h "$set_name-$i.$service" -p 26379 \
             sentinel get-master-addr-by-name "$master" 2>/dev/null | head -n 1 || true)
  case "$answer" in ""|*ERR*|*"Could not connect"*) ;; *) primary=$answer; break ;; esac
done
[ -n "$primary" ] || primary="$set_name-0.$service"

case "$role" in
  redis)
    conf=/data/redis.conf
    {
      echo "port 6379"
      echo "bind * -::*"
      echo "protected-mode no"
      echo "dir /data"
      echo "appendonly yes"
      echo "appendfsync everysec"
      echo "replica-announce-ip $me"
      if [ "$primary" != "$me" ]; then echo "replicaof $primary 6379"; fi
    } > "$conf"
    exec redis-server "$conf"
    ;;
  sentinel)
    # Sentinel rewrites its file: keep it on the pod's scratch volume.
    conf=/sentinel/sentinel.conf
    {
      echo "port 26379"
      echo "bind * -::*"
      echo "protected-mode no"
      echo "sentinel resolve-hostnames yes"
      echo "sentinel announce-hostnames yes"
      echo "sentinel announce-ip $me"
      echo "sentinel monitor $master $primary 6379 2"
      echo "sentinel down-after-milliseconds $master 5000"
      echo "sentinel failover-timeout $master 60000"
      echo "sentinel parallel-syncs $master 1"
    } > "$conf"
    exec redis-sentinel "$conf"
    ;;
  *)
    echo "usage: start.sh redis|sentinel" >&2
    exit 2
    ;;
esac
