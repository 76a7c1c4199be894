#!/usr/bin/env bash
# Start a local Mosquitto in front of the controller, in the production shape: two TLS listeners
# (devices 8883, centre 8884) on the controller's CA, the device ACL, the CRL. Creates the
# controller's keys if they do not exist yet. Runs in the background and returns once the broker
# listens; stop it with: kill "$(cat var/broker/mosquitto.pid)"
#
#   bash scripts/broker.sh [--data-dir DIR] [--out DIR] [--device-port N] [--centre-port N]
set -euo pipefail

out="var/broker"
device_port=8883
args=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift ;;
        --device-port) device_port="$2"; shift ;;
    esac
    shift
done

command -v mosquitto >/dev/null || { echo "mosquitto 未安装: apt-get install mosquitto" >&2; exit 1; }
muster controller broker-config "${args[@]}"
mosquitto -c "$out/mosquitto.conf" -d
for _ in $(seq 1 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$device_port") 2>/dev/null; then
        echo "Mosquitto 已启动 (pid $(cat "$out/mosquitto.pid"), log $out/mosquitto.log)"
        exit 0
    fi
    sleep 0.2
done
echo "Mosquitto 未能启动，见 $out/mosquitto.log" >&2
exit 1
