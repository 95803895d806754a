#!/usr/bin/env bash
# run.sh PORT — the systemd end-to-end scenario, run by TestSystemd inside
# ../shared/tools/systemd-sandbox (systemd as PID 1 of a throwaway container).
#
# The current directory holds `awakend` (a static build) and `awakend.service`
# (systemd/awakend.service, byte for byte). The script installs both as an
# operator would, starts the unit, reloads it with a good, a bad and a fixed
# config (`systemctl reload`), then once more with SIGHUP, and stops it. Each check prints "OK <name>"; the first failed one
# prints "FAIL <name>: <why>" and exits 1. The journal of the unit is printed
# at the end whatever happens, between "--- journal" and "--- end journal".
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
install -m 0644 awakend.service /etc/systemd/system/awakend.service || fail install "installing the unit"
cmp -s awakend.service /etc/systemd/system/awakend.service || fail install "installed unit differs from systemd/awakend.service"
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
verify=$(systemd-analyze verify /etc/systemd/system/awakend.service 2>&1)
if grep -i 'unknown\|invalid\|failed to parse\|ignoring' <<<"$verify"; then
	fail unit-verify "systemd-analyze verify: $verify"
fi
[[ -z $verify ]] || info "systemd-analyze verify: $verify"
[[ $(prop LoadState) == loaded ]] || fail unit-verify "LoadState=$(prop LoadState)"
ok unit-verify

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
pid=$(prop MainPID)
[[ $pid =~ ^[1-9][0-9]*$ ]] || fail hardening "MainPID=$pid"
[[ $(prop DynamicUser) == yes ]] || fail hardening "DynamicUser=$(prop DynamicUser)"
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
((uid >= 61184 && uid <= 65519)) || fail hardening "main process uid $uid is not a dynamic user (61184-65519)"
user=$(getent passwd "$uid" | cut -d: -f1)
[[ $user == awakend ]] || fail hardening "uid $uid is user '$user', want awakend"
grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$pid/status" || fail hardening "NoNewPrivs is not set"
grep -q '^Seccomp:[[:space:]]*2' "/proc/$pid/status" || fail hardening "no seccomp filter"
grep -q '^CapEff:[[:space:]]*0000000000000000' "/proc/$pid/status" || fail hardening "effective capabilities are not empty"
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

# --- 4. stop: clean exit ------------------------------------------------------------
timeout 60 systemctl stop "$unit" || fail stop "systemctl stop failed"
state=$(systemctl is-active "$unit")
[[ $state == inactive ]] || fail stop "is-active=$state after stop, want inactive"
[[ $(prop Result) == success ]] || fail stop "Result=$(prop Result)"
[[ $(prop ExecMainStatus) == 0 ]] || fail stop "ExecMainStatus=$(prop ExecMainStatus)"
wait_journal stop -E '^shutting down '
wait_journal stop -E '^stopped$'
if journalctl -u "$unit" --no-pager -o cat | grep -E 'Watchdog timeout|core-dump|Failed with result|panic:|DATA RACE'; then
	fail stop "the journal shows a failure"
fi
ok stop

echo "ALL OK"
