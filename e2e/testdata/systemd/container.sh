#!/usr/bin/env bash
# container.sh [-t SECONDS] -- COMMAND [ARG...] — boot this machine's systemd
# as PID 1 of a throwaway container, run COMMAND in it from the current
# directory (mounted at /srv/host), then power the container off.
#
# TestSystemd's own container, so that PrivateUsers=yes is tested for real:
# the kernel refuses a new user namespace to a process whose root is not the
# root of its mount namespace (a chroot(2)), so systemd must not run under
# chroot. Here the container's root is made the root of its mount namespace
# with pivot_root(2), and every service systemd starts can have its own user
# namespace.
#
# The container has private PID, mount, UTS and IPC namespaces and shares the
# host's network (a service in it listens on the host's loopback). Its root is
# an overlay of / whose writes land in a tmpfs, with private /run, /tmp and
# /var/tmp: nothing on the host changes.
#
# Exit status: COMMAND's; 124 when it ran past -t (default 120); 125 when the
# container did not come up (systemd's console log is then on stderr).
# Needs root, util-linux (unshare, nsenter, pivot_root) and overlayfs.
set -euo pipefail

# In the new namespaces (see the end): build the root, pivot into it, and
# become systemd.
if [[ ${1:-} == --init ]]; then
	work=$2 host=$3
	mount --make-rprivate /
	mount -t tmpfs -o size=4g tmpfs "$work/mnt"
	mkdir -p "$work/mnt/upper" "$work/mnt/work" "$work/mnt/root"
	r=$work/mnt/root
	mount -t overlay overlay -o "lowerdir=/,upperdir=$work/mnt/upper,workdir=$work/mnt/work" "$r"
	mount -t proc proc "$r/proc"
	mount --rbind /sys "$r/sys"
	mount --rbind /dev "$r/dev"
	for d in run tmp var/tmp; do mount -t tmpfs tmpfs "$r/$d"; done
	mkdir -p "$r/srv/host"
	mount --bind "$host" "$r/srv/host"
	mkdir -p "$r/run/systemd"
	echo awakend-test >"$r/run/systemd/container"
	# Units a test container has no use for, masked in the overlay only.
	for u in console-getty.service getty@.service postgresql.service postgresql@.service \
		apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer; do
		ln -sf /dev/null "$r/etc/systemd/system/$u"
	done
	mkdir -p "$r/.oldroot"
	cd "$r"
	pivot_root . .oldroot
	umount -l /.oldroot
	rmdir /.oldroot
	# Credentials (LoadCredential=) are mounted in a child mount namespace
	# of systemd's and need shared propagation to show in the service's.
	mount --make-rshared /
	cd /
	export container=awakend-test
	exec /lib/systemd/systemd --system --unit=multi-user.target --log-target=console --show-status=no
fi

limit=120
while getopts "t:" o; do
	case $o in
	t) limit=$OPTARG ;;
	*)
		echo "usage: container.sh [-t SECONDS] -- COMMAND..." >&2
		exit 125
		;;
	esac
done
shift $((OPTIND - 1))
[[ ${1:-} == -- ]] && shift
(($#)) || {
	echo "container.sh: no command" >&2
	exit 125
}
[[ $(id -u) == 0 ]] || {
	echo "container.sh: needs root" >&2
	exit 125
}
[[ $PWD != / ]] || {
	echo "container.sh: run it from a folder, not /" >&2
	exit 125
}

work=$(mktemp -d /tmp/awakend-container.XXXXXX)
mkdir "$work/mnt"
log=$work/console.log pid= failed=0
cleanup() {
	cd /
	if [[ -n $pid ]]; then
		timeout 10 nsenter -t "$pid" -p -m -r systemctl poweroff --no-block >/dev/null 2>&1 || true
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	if ((failed)) && [[ -f $log ]]; then cat "$log" >&2; fi
	rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

setsid unshare --fork --pid --mount --uts --ipc --propagation private \
	bash "$(realpath "$0")" --init "$work" "$PWD" >"$log" 2>&1 </dev/null &
starter=$!
for _ in $(seq 100); do
	pid=$(pgrep -P "$starter" 2>/dev/null | head -n1 || true)
	[[ -n $pid ]] && break
	sleep 0.1
done
if [[ -z $pid ]]; then
	echo "container.sh: the container did not start" >&2
	failed=1
	exit 125
fi
state=
for _ in $(seq 300); do
	state=$(timeout 5 nsenter -t "$pid" -p -m -r systemctl is-system-running 2>/dev/null || true)
	[[ $state == running || $state == degraded ]] && break
	sleep 0.2
done
if [[ $state != running && $state != degraded ]]; then
	echo "container.sh: systemd did not come up (state: ${state:-none})" >&2
	failed=1
	exit 125
fi
code=0
timeout "$limit" nsenter -t "$pid" -p -m -r -w -- /bin/sh -c 'cd /srv/host && exec "$@"' sh "$@" || code=$?
exit "$code"
