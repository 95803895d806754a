#!/usr/bin/env bash
# run.sh PORT — the systemd end-to-end scenario, run by TestSystemd inside
# container.sh (systemd as PID 1 of a throwaway container).
#
# The current directory holds `awakend` (a static build), `awakend.new` (the
# same with another version, for the upgrade), `sandboxprobe` (a static build
# of e2e/sandboxprobe) and the two units (systemd/awakend.service and
# awakend.socket, byte for byte). The script installs them as `make install`
# does, starts the service on its own listener with the sandbox probe run as
# an ExecStartPost= (it checks each hardening option from inside), reloads it
# with a good, a bad and a fixed config (`systemctl reload`), then once more
# with SIGHUP, changes the listen setting (a reload reports the restart it
# needs) and stops it. Then it starts the
# socket unit: a connection activates the service; TestSystemd's client
# sends a steady stream of requests while the script restarts the service
# ten times and upgrades the binary once; a credential is rotated by a
# restart; a reboot onto a broken directory comes up on the last-known-good
# configuration, and without one the service fails once. Each check prints
# "OK <name>"; the first failed one prints "FAIL <name>: <why>" and exits 1.
# The journal of the unit is printed at the end whatever happens, between
# "--- journal" and "--- end journal".
#
# The load is coordinated through files in the current directory: the
# script creates load.start and waits for load.running (the client had an
# answer), and at the end creates load.stop and waits for load.done, where
# the client wrote its figures.
#
# HTTP goes through bash's /dev/tcp, so nothing but bash and coreutils is
# needed in the image. The served config version is read from the
# X-Awakend-Config-Version header every response carries.
set -uo pipefail
umask 022

port=${1:?usage: run.sh PORT}
unit=awakend
conf=/etc/awakend/conf.d

dump_journal() {
	echo "--- journal"
	journalctl -u "$unit" --no-pager -o short-monotonic 2>&1
	echo "--- end journal"
}
trap dump_journal EXIT

ok() { echo "OK $*"; }
fail() {
	local name=$1
	shift
	echo "FAIL $name: $*"
	exit 1
}
info() { echo "INFO $*"; }

# http_get PATH: GET http://127.0.0.1:PORT/PATH over HTTP/1.0 (the server
# closes the connection after the answer). Sets code, cfgver and body.
http_get() {
	local resp
	code= cfgver= body=
	exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
	printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$1" "$port" >&3
	resp=$(timeout 10 cat <&3)
	exec 3<&-
	code=$(head -n1 <<<"$resp" | cut -d' ' -f2)
	cfgver=$(grep -i '^X-Awakend-Config-Version:' <<<"$resp" | tr -d '\r' | awk '{print $2}')
	body=${resp#*$'\r\n\r\n'}
	[[ -n $code ]]
}

# expect_get PATH CODE VERSION NAME: one GET, no retries.
expect_get() {
	http_get "$1" || fail "$4" "GET $1: no answer on 127.0.0.1:$port"
	[[ $code == "$2" ]] || fail "$4" "GET $1: HTTP $code, want $2: $body"
	[[ $cfgver == "$3" ]] || fail "$4" "GET $1: X-Awakend-Config-Version ${cfgver:-none}, want $3"
}

# wait_journal NAME GREP-ARGS...: the unit's journal (messages only) matches
# within 10 s; journald files stream lines asynchronously.
wait_journal() {
	local name=$1
	shift
	for _ in $(seq 100); do
		journalctl -u "$unit" --no-pager -o cat 2>/dev/null | grep -q "$@" && return 0
		sleep 0.1
	done
	fail "$name" "journal of $unit has no line matching: $*"
}

# write FILE: stdin to FILE atomically (temporary name, then rename), as
# editors and config management do; *.tmp names are ignored by awakend.
write() {
	cat >"$1.tmp" && mv -f "$1.tmp" "$1"
}

prop() { systemctl show -p "$1" --value "$unit"; }

info "$(systemctl --version | head -n1)"

# --- install, as `make install` does -----------------------------------------
install -m 0755 awakend /usr/local/bin/awakend || fail install "installing the binary"
install -d -m 0755 /usr/local/lib/awakend/root || fail install "creating the service's root directory"
install -m 0644 awakend.service /etc/systemd/system/awakend.service || fail install "installing the unit"
install -m 0644 awakend.socket /etc/systemd/system/awakend.socket || fail install "installing the socket unit"
cmp -s awakend.service /etc/systemd/system/awakend.service || fail install "installed unit differs from systemd/awakend.service"
# The socket listens where the settings say the daemon does, as the README
# says to keep it: a drop-in, as an operator changes a packaged unit.
mkdir -p /etc/systemd/system/awakend.socket.d
printf '[Socket]\nListenStream=\nListenStream=127.0.0.1:%s\n' "$port" >/etc/systemd/system/awakend.socket.d/port.conf
# PrivateUsers=yes needs user namespaces: container.sh's systemd is not
# under chroot(2), so the kernel grants them, and the shipped unit runs as is.
out=$(unshare -U true 2>&1) || fail install "this container cannot create user namespaces, which PrivateUsers=yes needs: $out"
mkdir -p "$conf"
# The file watcher is held off (an hour of debounce, no rescan) so that each
# reload below is the one asked for: with the default 250 ms, the watcher's
# own reload of the same edit lands a moment after `systemctl reload` returns
# and flips the unit to "reloading" and back while the checks run.
cat >/etc/awakend/awakend.yaml <<EOF
listen: 127.0.0.1:$port
config_dir: $conf
reload:
  debounce: 1h
  max_wait: 1h
  rescan_interval: 0s
EOF
write "$conf/providers.yaml" <<'EOF'
providers:
  - id: local-mock
    adapter: mock
EOF
write "$conf/models.yaml" <<'EOF'
models:
  - id: mock-fast
    provider_id: local-mock
    upstream_model: mock-small
EOF
write "$conf/agents.yaml" <<'EOF'
agents:
  - id: assistant
    model_id: mock-fast
    system_prompt: You are terse.
EOF
/usr/local/bin/awakend check "$conf" >/tmp/check.out 2>&1 || fail install "awakend check rejects the test config: $(cat /tmp/check.out)"
ok install

# systemd 252 must load the shipped unit without complaints: an unknown or
# rejected directive is only a warning at load time, so look for it.
systemctl daemon-reload || fail daemon-reload "systemctl daemon-reload"
verify=$(systemd-analyze verify /etc/systemd/system/awakend.service /etc/systemd/system/awakend.socket 2>&1)
if grep -i 'unknown\|invalid\|failed to parse\|ignoring' <<<"$verify"; then
	fail unit-verify "systemd-analyze verify: $verify"
fi
[[ -z $verify ]] || info "systemd-analyze verify: $verify"
[[ $(prop LoadState) == loaded ]] || fail unit-verify "LoadState=$(prop LoadState)"
[[ $(systemctl show -p LoadState --value awakend.socket) == loaded ]] || fail unit-verify "awakend.socket is not loaded"
ok unit-verify

# --- systemd-analyze security: only what a network client cannot do without ---
security=$(systemd-analyze security --no-pager awakend.service 2>&1) || fail security "systemd-analyze security: $security"
exposure=$(grep -o 'Overall exposure level for awakend.service: [0-9.]*' <<<"$security" | awk '{print $NF}')
echo "EXPOSURE $exposure"
# Each check still failing is one the daemon needs: sockets to reach
# upstreams and the notify socket, the host's network, and ProtectClock's own
# read access to the RTC.
unexpected=$(grep '✗' <<<"$security" | grep -v -E '✗ (RestrictAddressFamilies=~AF_UNIX|RestrictAddressFamilies=~AF_\(INET\|INET6\)|PrivateNetwork=|IPAddressDeny=|DeviceAllow=) ')
[[ -z $unexpected ]] || fail security "checks that fail: $unexpected"
# With egress limited to loopback (upstreams on the host only), the README's
# drop-in, for its figure.
mkdir -p /etc/systemd/system/awakend.service.d
printf '[Service]\nIPAddressDeny=any\nIPAddressAllow=localhost\n' >/etc/systemd/system/awakend.service.d/local-only.conf
systemctl daemon-reload
echo "EXPOSURE_LOCAL_ONLY $(systemd-analyze security --no-pager awakend.service 2>&1 | grep -o 'Overall exposure level for awakend.service: [0-9.]*' | awk '{print $NF}')"
rm /etc/systemd/system/awakend.service.d/local-only.conf
systemctl daemon-reload
ok security

# --- the sandbox probe: each hardening option checked from inside -----------
# The control: the sandbox probe run as root without a sandbox must fail
# each check, so that a pass below means the option is in effect. Some pass
# here: root has no ambient capabilities either (AmbientCapabilities= still
# matters for a unit that would grant some), this container's /tmp is a tmpfs
# of its own (the service's is checked from outside below), RemoveIPC's check
# is made outside, and ProtectHome's passes where /home and /root are empty.
probed=(DynamicUser=yes PrivateUsers=yes NoNewPrivileges=yes CapabilityBoundingSet= AmbientCapabilities= UMask=0077
	SystemCallFilter=@system-service SystemCallFilter=~@privileged SystemCallFilter=~@resources ProtectClock=yes
	ProtectKernelModules=yes ProtectKernelLogs=yes ProtectHostname=yes SystemCallArchitectures=native
	RestrictNamespaces=yes RestrictAddressFamilies=AF_UNIX MemoryDenyWriteExecute=yes LockPersonality=yes
	RestrictSUIDSGID=yes RootDirectory= ProtectSystem=strict RemoveIPC=yes ProtectHome=yes PrivateTmp=yes
	PrivateDevices=yes ProtectKernelTunables=yes ProtectControlGroups=yes ProtectProc=invisible NotifyAccess=main)
control=$(systemd-run --quiet --wait --pipe -p StateDirectory=probe-control "$PWD/sandboxprobe" 2>&1) &&
	fail probe-control "the sandbox probe passed without a sandbox: $control"
passes='AmbientCapabilities=|PrivateTmp=yes|RemoveIPC=yes'
[[ -n $(find /home /root -mindepth 1 -maxdepth 1 2>/dev/null) ]] || passes+='|ProtectHome=yes'
if grep '^PROBE ok' <<<"$control" | grep -v -E "^PROBE ok ($passes):"; then
	fail probe-control "checks above pass without a sandbox"
fi
for option in "${probed[@]}"; do
	grep -q -x -E "($passes)" <<<"$option" ||
		grep -q -F "PROBE FAIL $option" <<<"$control" || fail probe-control "$option does not fail without a sandbox: $control"
done
info "sandbox probe without a sandbox: $(grep -c '^PROBE FAIL' <<<"$control") checks fail"

# The sandbox probe runs once, at the first start, as an ExecStartPost=:
# systemd gives it the daemon's user, namespaces, mounts and filters. It is
# bound into the service's root beside the binary, which is all the drop-in
# adds to the unit.
printf '[Service]\nBindReadOnlyPaths=%s:/usr/local/lib/awakend-probe\nExecStartPost=/usr/local/lib/awakend-probe\n' \
	"$PWD/sandboxprobe" >/etc/systemd/system/awakend.service.d/probe.conf
systemctl daemon-reload
ok probe-control

# --- start: Type=notify returns once READY=1 is sent ------------------------
timeout 30 systemctl start "$unit" || fail start "systemctl start $unit failed: $(systemctl status --no-pager $unit 2>&1)"
[[ $(systemctl is-active "$unit") == active ]] || fail start "not active after start"
# No retries: READY=1 comes after the listener is up.
expect_get /api/v1/agents/assistant 200 1 start
expect_get /readyz 200 1 start
status=$(prop StatusText)
[[ $status == *"version 1"* ]] || fail start "StatusText=$status, want it to mention version 1"
ok start

# --- hardening: it runs as a dynamic user, sandboxed -------------------------
# The probe's verdicts, from the journal: one line per option, none failed
# (a failure would have failed the start). NotifyAccess= is its last.
wait_journal hardening -E '^PROBE (ok|FAIL) NotifyAccess=main'
probe=$(journalctl -u "$unit" --no-pager -o cat | grep '^PROBE ')
echo "$probe"
if grep '^PROBE FAIL' <<<"$probe"; then fail hardening "the sandbox probe failed"; fi
for option in "${probed[@]}"; do
	grep -q -F "PROBE ok $option" <<<"$probe" || fail hardening "the sandbox probe did not check $option"
done
rm /etc/systemd/system/awakend.service.d/probe.conf
systemctl daemon-reload
pid=$(prop MainPID)
[[ $pid =~ ^[1-9][0-9]*$ ]] || fail hardening "MainPID=$pid"
[[ $(prop DynamicUser) == yes ]] || fail hardening "DynamicUser=$(prop DynamicUser)"
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
((uid >= 61184 && uid <= 65519)) || fail hardening "main process uid $uid is not a dynamic user (61184-65519)"
user=$(getent passwd "$uid" | cut -d: -f1)
[[ $user == awakend ]] || fail hardening "uid $uid is user '$user', want awakend"
grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$pid/status" || fail hardening "NoNewPrivs is not set"
grep -q '^Seccomp:[[:space:]]*2' "/proc/$pid/status" || fail hardening "no seccomp filter"
for caps in CapEff CapPrm CapBnd CapAmb; do
	grep -q "^$caps:[[:space:]]*0000000000000000" "/proc/$pid/status" || fail hardening "$caps is not empty"
done
# ProtectHostname=yes: a UTS namespace of its own.
[[ $(readlink "/proc/$pid/ns/uts") != "$(readlink /proc/1/ns/uts)" ]] || fail hardening "the service shares systemd's UTS namespace"
# RootDirectory=: the main process sees the notify socket systemd binds in,
# and none of the host's other local sockets (systemd's own, here).
[[ -S /proc/$pid/root/run/systemd/notify ]] || fail hardening "no notify socket in the service's root"
[[ -S /run/systemd/private && ! -e /proc/$pid/root/run/systemd/private ]] || fail hardening "systemd's private socket is visible in the service's root"
[[ ! -e /proc/$pid/root/usr/bin ]] || fail hardening "/usr/bin is in the service's root"
# PrivateTmp=yes: the service's /tmp is not systemd's.
[[ $(stat -c %d:%i "/proc/$pid/root/tmp") != $(stat -c %d:%i /tmp) ]] || fail hardening "the service's /tmp is the host's"
# ProtectProc=invisible and ProcSubset=pid: the service's /proc is mounted
# with hidepid=invisible and subset=pid.
procopts=$(awk '$5 == "/proc" {print $NF}' "/proc/$pid/mountinfo")
[[ $procopts == *hidepid=invisible* && $procopts == *subset=pid* ]] || fail hardening "the service's /proc is mounted with '$procopts'"
# PrivateUsers=yes: a user namespace that maps root and the service's user only.
[[ $(readlink "/proc/$pid/ns/user") != "$(readlink /proc/1/ns/user)" ]] || fail hardening "the service shares systemd's user namespace"
umap=$(awk '{print $1 ":" $2 ":" $3}' "/proc/$pid/uid_map" | tr '\n' ' ')
[[ $umap == "0:0:1 $uid:$uid:1 " ]] || fail hardening "uid_map of the service is '$umap', want root and $uid only"
info "PrivateUsers: uid_map $umap"
# RemoveIPC=yes: the probe left a System V message queue, which the stop
# below must remove.
[[ $(nsenter -t 1 -i cat /proc/sysvipc/msg | awk -v u="$uid" '$8 == u' | wc -l) -ge 1 ]] || fail hardening "no message queue of $user (the probe leaves one)"
# The state directory is the service's, and the settings default to it.
[[ -d /var/lib/private/awakend && $(stat -c %u /var/lib/private/awakend) == "$uid" ]] || fail hardening "no state directory owned by the service"
[[ -f /var/lib/private/awakend/last-known-good.json ]] || fail hardening "no last-known-good.json in the state directory after start-up"
# /metrics works with /proc cut down (the process collector).
http_get /metrics || fail hardening "no answer on /metrics"
[[ $code == 200 && $body == *process_resident_memory_bytes* ]] || fail hardening "GET /metrics: HTTP $code"
info "User=$(prop User) DynamicUser=$(prop DynamicUser) uid=$uid ($user) ProtectSystem=$(prop ProtectSystem) WatchdogUSec=$(prop WatchdogUSec)"
ok hardening

# --- journal format: <N>-prefixed plain lines, no timestamps of our own --------
wait_journal journal-format -E '^config loaded '
if journalctl -u "$unit" --no-pager -o cat | grep -E '^(time=|level=|<[0-7]>|\{)'; then
	fail journal-format "lines above are not in journald's plain format"
fi
# The <6> prefix was parsed: "config loaded" is filed at info, not above.
[[ $(journalctl -u "$unit" --no-pager -o cat -p info | grep -c '^config loaded ') -ge 1 ]] ||
	fail journal-format "config loaded is not at priority info or above"
[[ $(journalctl -u "$unit" --no-pager -o cat -p notice | grep -c '^config loaded ') -eq 0 ]] ||
	fail journal-format "config loaded is filed above info: the <6> prefix was not parsed"
ok journal-format

# --- 1. a good edit, then systemctl reload --------------------------------------
write "$conf/more-agents.yaml" <<'EOF'
agents:
  - id: reviewer
    model_id: mock-fast
EOF
out=$(timeout 30 systemctl reload "$unit" 2>&1) || fail reload-applied "systemctl reload failed (exit $?): $out"
expect_get /api/v1/agents/reviewer 200 2 reload-applied
status=$(prop StatusText)
[[ $status == *"version 2"* ]] || fail reload-applied "StatusText=$status, want it to mention version 2"
[[ $(systemctl is-active "$unit") == active ]] || fail reload-applied "not active after reload"
info "StatusText=$status"
ok reload-applied

# --- 2. a bad edit: the reload fails, the old registry keeps serving ------------
write "$conf/more-agents.yaml" <<'EOF'
agents:
  - id: reviewer
    model_id: mock-fast
  - id: broken
    model_id: no-such-model
EOF
if out=$(timeout 30 systemctl reload "$unit" 2>&1); then
	fail reload-rejected "systemctl reload succeeded with an agent on a missing model: $out"
fi
info "systemctl reload: $out"
wait_journal reload-rejected -E '^more-agents\.yaml:[0-9]+:[0-9]+: error: .*\[agent_missing_model\]$'
# ExecReload='s awakend reload files its diagnostics at error priority too.
journalctl -u "$unit" --no-pager -o cat -p err | grep -q -E '^more-agents\.yaml:[0-9]+:[0-9]+: error: .*\[agent_missing_model\]$' ||
	fail reload-rejected "the diagnostic is not at error priority"
expect_get /api/v1/agents/broken 404 2 reload-rejected
expect_get /api/v1/agents/reviewer 200 2 reload-rejected
[[ $(systemctl is-active "$unit") == active ]] || fail reload-rejected "not active after a rejected reload"
[[ $(prop MainPID) == "$pid" ]] || fail reload-rejected "the main process changed: $pid -> $(prop MainPID)"
status=$(prop StatusText)
[[ $status == *"version 2"*rejected* ]] || fail reload-rejected "StatusText=$status, want version 2 and the rejection"
info "StatusText=$status"
ok reload-rejected

# --- 3. fix it: the reload succeeds again -----------------------------------------
write "$conf/more-agents.yaml" <<'EOF'
agents:
  - id: reviewer
    model_id: mock-fast
  - id: broken
    model_id: mock-fast
EOF
out=$(timeout 30 systemctl reload "$unit" 2>&1) || fail reload-fixed "systemctl reload failed (exit $?): $out"
expect_get /api/v1/agents/broken 200 3 reload-fixed
status=$(prop StatusText)
[[ $status == *"version 3"* && $status != *rejected* ]] || fail reload-fixed "StatusText=$status, want version 3 and no rejection"
[[ $(prop MainPID) == "$pid" ]] || fail reload-fixed "the main process changed: $pid -> $(prop MainPID)"
ok reload-fixed

# --- SIGHUP: a reload systemd did not ask for (RELOADING=1, then READY=1) -------
write "$conf/more-agents.yaml" <<'EOF'
agents:
  - id: reviewer
    model_id: mock-fast
  - id: broken
    model_id: mock-fast
  - id: night
    model_id: mock-fast
EOF
systemctl kill -s HUP --kill-who=main "$unit" || fail sighup "systemctl kill -s HUP failed"
for _ in $(seq 100); do
	http_get /api/v1/agents/night && [[ $code == 200 ]] && break
	sleep 0.1
done
expect_get /api/v1/agents/night 200 4 sighup
# READY=1 follows the swap at once; give systemd a moment to read it.
for _ in $(seq 50); do
	[[ $(systemctl is-active "$unit") == active && $(prop StatusText) == *"version 4"* ]] && break
	sleep 0.1
done
[[ $(systemctl is-active "$unit") == active ]] || fail sighup "is-active=$(systemctl is-active "$unit") after SIGHUP"
[[ $(prop StatusText) == *"version 4"* ]] || fail sighup "StatusText=$(prop StatusText), want version 4"
[[ $(prop MainPID) == "$pid" ]] || fail sighup "the main process changed: $pid -> $(prop MainPID)"
wait_journal sighup -E '^config reload trigger=signal result=applied version=4 '
ok sighup

# --- settings: a new listen address waits for a restart, and says so -----------
# ExecReload='s awakend reload reaches the daemon at the URL it wrote to its
# runtime directory, not at the address the settings file names now.
cp /etc/awakend/awakend.yaml settings.saved
sed -i "s/^listen: .*/listen: 127.0.0.1:$((port + 1))/" /etc/awakend/awakend.yaml
out=$(timeout 30 systemctl reload "$unit" 2>&1) || fail settings-restart "systemctl reload failed after a listen change (exit $?): $out"
[[ -s /run/awakend/awakend.url ]] || fail settings-restart "no /run/awakend/awakend.url"
wait_journal settings-restart -E "needs a restart to apply \(running with the old value\): listen: 127\.0\.0\.1:$port → 127\.0\.0\.1:$((port + 1))$"
[[ $(prop StatusText) == *"restart to apply listen: 127.0.0.1:$port → 127.0.0.1:$((port + 1))"* ]] ||
	fail settings-restart "StatusText=$(prop StatusText), want the pending listen"
expect_get /readyz 200 4 settings-restart
cp settings.saved /etc/awakend/awakend.yaml
out=$(timeout 30 systemctl reload "$unit" 2>&1) || fail settings-restart "systemctl reload failed after the revert (exit $?): $out"
[[ $(prop StatusText) != *"restart to apply"* ]] || fail settings-restart "StatusText=$(prop StatusText) after the revert"
ok settings-restart

# --- 4. stop: clean exit ------------------------------------------------------------
timeout 60 systemctl stop "$unit" || fail stop "systemctl stop failed"
state=$(systemctl is-active "$unit")
[[ $state == inactive ]] || fail stop "is-active=$state after stop, want inactive"
[[ $(prop Result) == success ]] || fail stop "Result=$(prop Result)"
[[ $(prop ExecMainStatus) == 0 ]] || fail stop "ExecMainStatus=$(prop ExecMainStatus)"
wait_journal stop -E '^shutting down '
wait_journal stop -E '^stopped$'
[[ $(nsenter -t 1 -i cat /proc/sysvipc/msg | awk -v u="$uid" '$8 == u' | wc -l) -eq 0 ]] || fail stop "$user's message queue outlived the service (RemoveIPC=yes)"
if journalctl -u "$unit" --no-pager -o cat | grep -E 'Watchdog timeout|core-dump|Failed with result|panic:|DATA RACE'; then
	fail stop "the journal shows a failure"
fi
ok stop

# --- socket activation: the first connection starts the service ---------------
# One restart every 2.1 s at most: systemd refuses a sixth start within 10 s
# (the default StartLimitBurst= and StartLimitIntervalSec=).
pace() {
	while (($(date +%s%N) - paced < 2100000000)); do sleep 0.05; done
	paced=$(date +%s%N)
}
paced=0
write "$conf/more-agents.yaml" <<'EOF'
agents:
  - id: reviewer
    model_id: mock-fast
EOF
systemctl start awakend.socket || fail socket-start "systemctl start awakend.socket"
[[ $(systemctl is-active awakend.socket) == active ]] || fail socket-start "socket not listening"
[[ $(systemctl is-active "$unit") == inactive ]] || fail socket-start "the service started before any connection"
expect_get /api/v1/agents/reviewer 200 1 socket-start
paced=$(date +%s%N) # that was a start
[[ $(systemctl is-active "$unit") == active ]] || fail socket-start "the service is not active after a connection"
wait_journal socket-start -E "^socket passed by systemd name=awakend.socket addr=127.0.0.1:$port$"
ok socket-start

# --- restarts and an upgrade under load: every request answered --------------
touch load.start
for _ in $(seq 100); do [[ -e load.running ]] && break; sleep 0.1; done
[[ -e load.running ]] || fail load "the client did not start"
pids=$(prop MainPID)
restarts=$(prop NRestarts) # automatic restarts: a start that failed
for i in $(seq 10); do
	pace
	before=$(prop MainPID)
	timeout 30 systemctl restart "$unit" || fail restarts "systemctl restart #$i failed"
	after=$(prop MainPID)
	[[ $after != "$before" && $after != 0 ]] || fail restarts "restart #$i: MainPID $before -> $after"
	pids="$pids $after"
done
info "restarts: main processes $pids"
ok restarts
install -m 0755 awakend.new /usr/local/bin/awakend || fail upgrade "installing the new binary"
pace
timeout 30 systemctl restart "$unit" || fail upgrade "systemctl restart after the upgrade failed"
http_get /api/v1/status || fail upgrade "no answer after the upgrade"
[[ $body == *'"build_version":"upgrade-test"'* ]] || fail upgrade "status after the upgrade: $body"
ok upgrade
# Some load on the new binary too, then the client's figures.
sleep 0.5
touch load.stop
for _ in $(seq 300); do [[ -e load.done ]] && break; sleep 0.1; done
[[ -e load.done ]] || fail load "the client did not finish"
echo "LOAD $(cat load.done)"
grep -q ' failed=0 ' load.done || fail load "requests failed: $(cat load.done)"
[[ $(prop NRestarts) == "$restarts" ]] || fail load "systemd restarted the service on its own $(($(prop NRestarts) - restarts)) times"
ok load

# --- a credential rotated by a restart --------------------------------------------
mkdir -p /etc/awakend/keys
echo 'prompt one' >/etc/awakend/keys/prompt
mkdir -p /etc/systemd/system/awakend.service.d
printf '[Service]\nLoadCredential=prompt:/etc/awakend/keys/prompt\n' >/etc/systemd/system/awakend.service.d/credential.conf
systemctl daemon-reload
write "$conf/rotator.yaml" <<'EOF'
agents:
  - id: rotator
    model_id: mock-fast
    system_prompt: "${credential:prompt}"
EOF
pace
timeout 30 systemctl restart "$unit" || fail credential "restart with the credential failed"
http_get /api/v1/agents/rotator
[[ $code == 200 && $body == *'"system_prompt":"prompt one"'* ]] || fail credential "before the rotation: HTTP $code $body"
echo 'prompt two' >/etc/awakend/keys/prompt
timeout 30 systemctl reload "$unit" || fail credential "reload failed"
http_get /api/v1/agents/rotator
[[ $body == *'"system_prompt":"prompt one"'* ]] || fail credential "a reload picked up the rotated credential (systemd copies it at start only): $body"
pace
timeout 30 systemctl restart "$unit" || fail credential "restart after the rotation failed"
http_get /api/v1/agents/rotator
[[ $code == 200 && $body == *'"system_prompt":"prompt two"'* ]] || fail credential "after the restart: HTTP $code $body"
ok credential

# --- a reboot onto a broken directory: the last-known-good configuration ------
timeout 30 systemctl stop awakend.socket "$unit" || fail reboot "stop"
write "$conf/more-agents.yaml" <<'EOF'
agents:
  - id: reviewer
    model_id: no-such-model
EOF
since=$(date '+%Y-%m-%d %H:%M:%S')
sleep 1 # journalctl --since counts whole seconds
pace
timeout 30 systemctl start awakend.socket "$unit" || fail reboot "start on the broken directory failed"
[[ $(systemctl is-active "$unit") == active ]] || fail reboot "not active"
http_get /api/v1/agents/reviewer
[[ $code == 200 && $body == *'"model_id":"mock-fast"'* ]] || fail reboot "reviewer is not the last-known-good one: HTTP $code $body"
status=$(prop StatusText)
[[ $status == DEGRADED:* ]] || fail reboot "StatusText=$status, want DEGRADED"
info "StatusText=$status"
http_get /api/v1/status
[[ $body == *'"degraded":{'* ]] || fail reboot "status is not degraded: $body"
http_get /metrics
grep -q '^awakend_config_degraded 1' <<<"$body" || fail reboot "awakend_config_degraded is not 1"
errs=$(journalctl -u "$unit" --no-pager -o cat -p err --since "$since")
echo "--- journalctl -p err"
echo "$errs"
echo "--- end journalctl -p err"
grep -q -E '^more-agents\.yaml:[0-9]+:[0-9]+: error: .*\[agent_missing_model\]$' <<<"$errs" || fail reboot "the diagnostic is not at error priority"
grep -q '^DEGRADED: config rejected at start-up; serving the last-known-good configuration' <<<"$errs" || fail reboot "no DEGRADED line at error priority"
if /usr/local/bin/awakend check "$conf" >/dev/null 2>&1; then fail reboot "awakend check accepts the broken directory"; fi
if timeout 30 systemctl reload "$unit" >/dev/null 2>&1; then fail reboot "systemctl reload succeeded on the broken directory"; fi
ok reboot

# --- no last-known-good: start-up fails once, no restart loop ---------------------
timeout 30 systemctl stop awakend.socket "$unit" || fail no-lastgood "stop"
rm -f /var/lib/private/awakend/last-known-good.json
since=$(date '+%Y-%m-%d %H:%M:%S')
sleep 1
pace
restarts=$(prop NRestarts)
if timeout 30 systemctl start "$unit" 2>/dev/null; then fail no-lastgood "started without a valid or saved configuration"; fi
sleep 3 # RestartSec=2s: a restart would have happened by now
[[ $(prop NRestarts) == "$restarts" ]] || fail no-lastgood "NRestarts $restarts -> $(prop NRestarts), want no restart (RestartPreventExitStatus=1)"
[[ $(systemctl is-active "$unit") == failed ]] || fail no-lastgood "is-active=$(systemctl is-active "$unit"), want failed"
[[ $(prop ExecMainStatus) == 1 ]] || fail no-lastgood "ExecMainStatus=$(prop ExecMainStatus), want 1"
n=$(journalctl -u "$unit" --no-pager -o cat --since "$since" | grep -c '^config rejected at start-up; not starting')
[[ $n == 1 ]] || fail no-lastgood "'not starting' logged $n times, want once"
journalctl -u "$unit" --no-pager -o cat -p err --since "$since" | grep -q -E '^more-agents\.yaml:[0-9]+:[0-9]+: error: ' || fail no-lastgood "the diagnostic is not at error priority"
ok no-lastgood

echo "ALL OK"
