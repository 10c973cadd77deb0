#!/bin/sh
# macos-agent-lite.sh: what a Mac runs to be an intune-connector endpoint agent (runtime-lite).
#
#   sudo ./macos-agent-lite.sh enroll  SERVER_URL TOKEN   # once: key, CSR, enrollment, first heartbeat
#   sudo ./macos-agent-lite.sh heartbeat                  # then periodically (a LaunchDaemon, every 15 min)
#   sudo ./macos-agent-lite.sh renew                      # before the certificate expires (30 days)
#
# SERVER_URL is the connector's main listener (http(s)://host:8080); TOKEN comes from
# `intune-connector agents token create` or POST /api/v1/agents/enrollment-tokens.
# The private key is made here and never leaves the Mac. The serial number and hardware UUID are sent
# once, at enrollment; the server keeps only keyed fingerprints of them.
#
# State lives in $AGENT_DIR (default /var/db/intune-connector-agent, mode 0700):
#   agent.key (private key), agent.crt (client certificate), ca.pem (tenant agent CA),
#   server-ca.pem (CA of the agent listener, when the server made its own), agent.url, agent.id
#
# Needs only what macOS ships: /bin/sh, openssl (LibreSSL), curl, plutil, sw_vers, ioreg, sysctl,
# fdesetup, socketfilterfw, csrutil, spctl. Where plutil is missing (a test host), python3 reads JSON.
set -eu

AGENT_DIR=${AGENT_DIR:-/var/db/intune-connector-agent}
AGENT_VERSION=0.1.0-sh
umask 077

die() { echo "macos-agent-lite: $*" >&2; exit 1; }

# json_get FILE KEY: one string field of a JSON object ("ca_chain.0" for an array item); empty when absent.
json_get() {
  if command -v plutil >/dev/null 2>&1; then
    plutil -extract "$2" raw -o - "$1" 2>/dev/null || true
  else
    python3 -c 'import json,sys
v=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v[int(k)] if isinstance(v, list) else v.get(k) if isinstance(v, dict) else None
    if v is None: break
print(v if isinstance(v, str) else "", end="")' "$1" "$2"
  fi
}

# JSON string escaping for PEM text: backslashes, quotes, and newlines as \n.
json_text() { awk 'BEGIN{ORS=""} {gsub(/\\/,"\\\\"); gsub(/"/,"\\\""); print $0 "\\n"}' "$1"; }

# true | false | "unknown", from a command's output and the words that mean on and off.
tri() { # tri "output" on_pattern off_pattern
  case "$1" in
    *$2*) echo true ;;
    *$3*) echo false ;;
    *) echo '"unknown"' ;;
  esac
}

posture_json() {
  os_version=$(sw_vers -productVersion)
  os_build=$(sw_vers -buildVersion)
  boot=$(sysctl -n kern.boottime | sed -n 's/.*sec = \([0-9]*\).*/\1/p')
  now=$(date -u +%s)
  uptime=$(( now - ${boot:-$now} ))
  filevault=$(tri "$(fdesetup status 2>/dev/null || true)" "FileVault is On" "FileVault is Off")
  firewall=$(tri "$(/usr/libexec/ApplicationFirewall/socketfilterfw --getglobalstate 2>/dev/null || true)" "enabled" "disabled")
  sip=$(tri "$(csrutil status 2>/dev/null || true)" "status: enabled" "status: disabled")
  gatekeeper=$(tri "$(spctl --status 2>/dev/null || true)" "assessments enabled" "assessments disabled")
  printf '{"os_version":"%s","os_build":"%s","uptime_seconds":%s,"filevault":%s,"firewall":%s,"sip":%s,"gatekeeper":%s,"agent_version":"%s","time":"%s"}' \
    "$os_version" "$os_build" "$uptime" "$filevault" "$firewall" "$sip" "$gatekeeper" "$AGENT_VERSION" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}

# mtls PATH BODY_FILE OUT_FILE: POST over mutual TLS; prints the HTTP status.
mtls() {
  set -- "$1" "$2" "$3"
  cacert=""
  [ -s "$AGENT_DIR/server-ca.pem" ] && cacert="--cacert $AGENT_DIR/server-ca.pem"
  # shellcheck disable=SC2086
  curl -sS $cacert --cert "$AGENT_DIR/agent.crt" --key "$AGENT_DIR/agent.key" \
    -H 'content-type: application/json' --data-binary "@$2" -o "$3" -w '%{http_code}' \
    "$(cat "$AGENT_DIR/agent.url")$1"
}

new_key_and_csr() { # new_key_and_csr KEY_FILE CSR_FILE
  openssl ecparam -name prime256v1 -genkey -noout -out "$1.ec"
  openssl pkcs8 -topk8 -nocrypt -in "$1.ec" -out "$1"
  rm -f "$1.ec"
  openssl req -new -key "$1" -subj "/CN=macos-agent-lite" -out "$2"
}

enroll() {
  [ $# -eq 2 ] || die "usage: $0 enroll SERVER_URL TOKEN"
  server=${1%/}
  token=$2
  mkdir -p "$AGENT_DIR"
  chmod 700 "$AGENT_DIR"
  new_key_and_csr "$AGENT_DIR/agent.key" "$AGENT_DIR/agent.csr"
  serial=$(ioreg -rd1 -c IOPlatformExpertDevice | awk -F'"' '/IOPlatformSerialNumber/{print $4}')
  hw_uuid=$(ioreg -rd1 -c IOPlatformExpertDevice | awk -F'"' '/IOPlatformUUID/{print $4}')
  model=$(sysctl -n hw.model)
  {
    printf '{"token":"%s","csr":"' "$token"
    json_text "$AGENT_DIR/agent.csr"
    printf '","platform":"darwin","agent_class":"endpoint","os_version":"%s","os_build":"%s","serial_number":"%s","hardware_uuid":"%s","model":"%s"}' \
      "$(sw_vers -productVersion)" "$(sw_vers -buildVersion)" "$serial" "$hw_uuid" "$model"
  } > "$AGENT_DIR/enroll.json"
  status=$(curl -sS -H 'content-type: application/json' --data-binary "@$AGENT_DIR/enroll.json" \
    -o "$AGENT_DIR/enrolled.json" -w '%{http_code}' "$server/api/v1/agents/enroll")
  rm -f "$AGENT_DIR/enroll.json" "$AGENT_DIR/agent.csr"
  [ "$status" = 201 ] || die "enrollment refused ($status): $(cat "$AGENT_DIR/enrolled.json")"
  json_get "$AGENT_DIR/enrolled.json" certificate > "$AGENT_DIR/agent.crt"
  json_get "$AGENT_DIR/enrolled.json" ca_chain.0 > "$AGENT_DIR/ca.pem"
  json_get "$AGENT_DIR/enrolled.json" server_ca > "$AGENT_DIR/server-ca.pem"
  json_get "$AGENT_DIR/enrolled.json" agent_id > "$AGENT_DIR/agent.id"
  url=${AGENT_URL:-$(json_get "$AGENT_DIR/enrolled.json" agent_url)}
  [ -n "$url" ] || die "the server named no agent listener; set AGENT_URL=https://host:8443"
  printf '%s' "$url" > "$AGENT_DIR/agent.url"
  rm -f "$AGENT_DIR/enrolled.json"
  echo "enrolled as agent $(cat "$AGENT_DIR/agent.id")"
  heartbeat
}

heartbeat() {
  [ -s "$AGENT_DIR/agent.crt" ] || die "not enrolled: run $0 enroll SERVER_URL TOKEN"
  posture_json > "$AGENT_DIR/heartbeat.json"
  status=$(mtls /api/v1/agents/heartbeat "$AGENT_DIR/heartbeat.json" "$AGENT_DIR/answer.json")
  [ "$status" = 200 ] || die "heartbeat refused ($status): $(cat "$AGENT_DIR/answer.json")"
  echo "heartbeat accepted: $(cat "$AGENT_DIR/answer.json")"
}

renew() {
  [ -s "$AGENT_DIR/agent.crt" ] || die "not enrolled: run $0 enroll SERVER_URL TOKEN"
  new_key_and_csr "$AGENT_DIR/next.key" "$AGENT_DIR/next.csr"
  { printf '{"csr":"'; json_text "$AGENT_DIR/next.csr"; printf '"}'; } > "$AGENT_DIR/renew.json"
  status=$(mtls /api/v1/agents/renew "$AGENT_DIR/renew.json" "$AGENT_DIR/renewed.json")
  rm -f "$AGENT_DIR/renew.json" "$AGENT_DIR/next.csr"
  [ "$status" = 200 ] || die "renewal refused ($status): $(cat "$AGENT_DIR/renewed.json")"
  json_get "$AGENT_DIR/renewed.json" certificate > "$AGENT_DIR/agent.crt"
  mv "$AGENT_DIR/next.key" "$AGENT_DIR/agent.key"
  rm -f "$AGENT_DIR/renewed.json"
  echo "renewed; certificate valid until $(openssl x509 -noout -enddate -in "$AGENT_DIR/agent.crt" | cut -d= -f2)"
}

case "${1:-}" in
  enroll) shift; enroll "$@" ;;
  heartbeat) heartbeat ;;
  renew) renew ;;
  *) die "usage: $0 enroll SERVER_URL TOKEN | heartbeat | renew" ;;
esac
