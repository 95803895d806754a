// Command sandboxprobe checks, from inside awakend.service's sandbox, that
// each hardening option of the shipped unit is in effect. TestSystemd runs it
// as an ExecStartPost= of the unit, which systemd starts with the daemon's
// own user, namespaces, mounts, seccomp filter and environment. For each
// option it prints "PROBE ok OPTION: evidence" or "PROBE FAIL OPTION: why",
// and it exits 1 when any failed. A system call that the filter answers by
// killing the caller is made by a child (sandboxprobe -call NAME), which
// must die of SIGSYS.
package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "-call" {
		os.Exit(call(os.Args[2]))
	}
	p := &probe{w: os.Stdout}
	p.run()
	if p.failed {
		os.Exit(1)
	}
}

// probe runs the checks and reports each on w.
type probe struct {
	w      io.Writer
	failed bool
}

func (p *probe) check(option string, evidence string, err error) {
	if err != nil {
		p.failed = true
		fmt.Fprintf(p.w, "PROBE FAIL %s: %v\n", option, err)
		return
	}
	fmt.Fprintf(p.w, "PROBE ok %s: %s\n", option, evidence)
}

func (p *probe) run() {
	status, err := procStatus()
	if err != nil {
		p.check("status", "", err)
		return
	}
	uid := os.Getuid()
	p.check("DynamicUser=yes", fmt.Sprintf("uid %d", uid), want(uid >= 61184 && uid <= 65519, "uid %d is not a dynamic one", uid))
	p.check("PrivateUsers=yes", "uid_map maps root and the service's user only", uidMap(uid))
	p.check("NoNewPrivileges=yes", "NoNewPrivs 1", want(status["NoNewPrivs"] == "1", "NoNewPrivs %q", status["NoNewPrivs"]))
	for option, field := range map[string]string{
		"CapabilityBoundingSet=": "CapBnd", "AmbientCapabilities=": "CapAmb",
	} {
		p.check(option, field+" 0", want(status[field] == "0000000000000000", "%s %s", field, status[field]))
	}
	p.check("UMask=0077", "a file created 0666 is 0600", umask())

	// The system call filter kills the caller (SIGSYS) for what it does
	// not allow; namespaces, address families, W^X mappings, personality
	// and set-user-ID bits are refused with an error instead. The filters
	// overlap: the allow list alone already kills every call below, so a
	// kill shows the call is blocked, not which option blocks it (seccomp
	// applies the strictest verdict of all). The other halves of the
	// Protect* options (a UTS namespace, no /dev/kmsg nor RTC) are checked
	// on their own.
	for _, c := range []struct{ option, call string }{
		{"SystemCallFilter=@system-service", "ptrace"},
		{"SystemCallFilter=~@privileged", "acct"},
		{"SystemCallFilter=~@resources", "setpriority"},
		{"SystemCallFilter=~@resources (RestrictRealtime=yes)", "sched_setscheduler"},
		{"ProtectClock=yes", "clock_settime"},
		{"ProtectKernelModules=yes", "finit_module"},
		{"ProtectKernelLogs=yes", "syslog"},
		{"ProtectHostname=yes", "sethostname"},
		{"SystemCallArchitectures=native", "i386-getpid"},
	} {
		p.check(c.option, c.call+" is killed (SIGSYS)", killed(c.call))
	}
	p.check("RestrictNamespaces=yes", "clone with each CLONE_NEW* flag: EPERM", namespaces())
	p.check("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "AF_NETLINK and AF_PACKET refused; AF_UNIX, AF_INET, AF_INET6 allowed", families())
	p.check("MemoryDenyWriteExecute=yes", "a writable and executable mapping: EPERM", wx())
	p.check("LockPersonality=yes", "personality(PER_LINUX32): EPERM", personality())
	p.check("RestrictSUIDSGID=yes", "chmod 04700 in the state directory: EPERM", suid())

	mounts, err := mountInfo()
	if err != nil {
		p.check("mounts", "", err)
		return
	}
	p.check("RootDirectory= BindReadOnlyPaths=", "/ holds "+strings.Join(entries("/"), " ")+"; /run holds "+strings.Join(entries("/run"), " ")+
		"; localhost resolves, the system's CA certificates load", rootDir())
	p.check("ProtectSystem=strict", "/ and /etc read-only, the state directory writable", protectSystem(mounts))
	p.check("ProtectHome=yes", "/home, /root and /run/user are empty and inaccessible", protectHome())
	p.check("PrivateTmp=yes", "/tmp and /var/tmp are mounts of their own, writable", privateTmp(mounts))
	p.check("PrivateDevices=yes", "/dev holds "+strings.Join(entries("/dev"), " "), privateDevices(mounts))
	p.check("ProtectKernelTunables=yes", "/sys read-only", readOnly(mounts, "/sys"))
	p.check("ProtectControlGroups=yes", "every cgroup hierarchy read-only", cgroups(mounts))
	p.check("ProtectProc=invisible ProcSubset=pid", "/proc: "+mounts["/proc"].super, procMount(mounts))
	p.check("RemoveIPC=yes", "left a System V message queue for the test to see removed at stop", queue())
	p.check("NotifyAccess=main", "no NOTIFY_SOCKET and no /run/systemd/notify for a process that is not the main one", notify())
}

// want is an error made of format unless ok.
func want(ok bool, format string, args ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf(format, args...)
}

func procStatus() (map[string]string, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(line, ":")
		m[k] = strings.TrimSpace(v)
	}
	return m, nil
}

func uidMap(uid int) error {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return err
	}
	got := strings.Join(strings.Fields(string(b)), " ")
	if w := fmt.Sprintf("0 0 1 %d %d 1", uid, uid); got != w {
		return fmt.Errorf("uid_map %q, want %q", got, w)
	}
	return nil
}

func umask() error {
	dir := os.Getenv("STATE_DIRECTORY")
	f, err := os.OpenFile(filepath.Join(dir, "probe-umask"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o666)
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return want(fi.Mode().Perm() == 0o600, "mode %v", fi.Mode().Perm())
}

// call makes one system call that the filter must not let through, and
// returns 0 if it came back (the parent reports that as a failure). Each is
// made so that it changes nothing where it is allowed but the child itself
// (its priority, its scheduler): an invalid time, the host name it already
// has, a file that does not exist.
func call(name string) int {
	var errno syscall.Errno
	switch name {
	case "ptrace":
		_, _, errno = unix.RawSyscall(unix.SYS_PTRACE, unix.PTRACE_TRACEME, 0, 0)
	case "acct":
		path := []byte("/nonexistent\x00")
		_, _, errno = unix.RawSyscall(unix.SYS_ACCT, uintptr(unsafe.Pointer(&path[0])), 0, 0)
	case "setpriority":
		_, _, errno = unix.RawSyscall(unix.SYS_SETPRIORITY, unix.PRIO_PROCESS, 0, 10)
	case "sched_setscheduler":
		prio := int32(1)
		_, _, errno = unix.RawSyscall(unix.SYS_SCHED_SETSCHEDULER, 0, unix.SCHED_FIFO, uintptr(unsafe.Pointer(&prio)))
	case "clock_settime":
		ts := unix.Timespec{Nsec: -1} // invalid: the clock cannot change
		_, _, errno = unix.RawSyscall(unix.SYS_CLOCK_SETTIME, unix.CLOCK_REALTIME, uintptr(unsafe.Pointer(&ts)), 0)
	case "finit_module":
		_, _, errno = unix.RawSyscall(unix.SYS_FINIT_MODULE, ^uintptr(0), 0, 0)
	case "syslog":
		_, _, errno = unix.RawSyscall(unix.SYS_SYSLOG, 10, 0, 0) // SYSLOG_ACTION_SIZE_BUFFER
	case "sethostname":
		var u unix.Utsname // the name it has: nothing changes
		if err := unix.Uname(&u); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		name := u.Nodename[:slices.Index(u.Nodename[:], 0)]
		_, _, errno = unix.RawSyscall(unix.SYS_SETHOSTNAME, uintptr(unsafe.Pointer(&name[0])), uintptr(len(name)), 0)
	case "i386-getpid":
		var killed bool
		if errno, killed = i386Getpid(); killed {
			fmt.Println(threadKilled)
			return 3
		}
	case "none":
		return 0
	default:
		fmt.Fprintf(os.Stderr, "sandboxprobe: unknown call %q\n", name)
		return 2
	}
	fmt.Printf("%s returned (errno %d)\n", name, errno)
	return 0
}

// threadKilled is what a child prints, exiting 3, when the filter killed
// the thread that made the call rather than the whole process.
const threadKilled = "the calling thread was killed"

// killed runs `sandboxprobe -call name` and wants it killed by SIGSYS, or
// its calling thread killed.
func killed(name string) error {
	out, err := exec.Command("/proc/self/exe", "-call", name).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 3 && strings.TrimSpace(string(out)) == threadKilled {
		return nil
	}
	if !errors.As(err, &ee) {
		return fmt.Errorf("%s was allowed: %v %s", name, err, strings.TrimSpace(string(out)))
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGSYS {
		return fmt.Errorf("%s: %v, want death by SIGSYS: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func namespaces() error {
	// The same child without a flag starts: the refusals are the filter's.
	if err := exec.Command("/proc/self/exe", "-call", "none").Run(); err != nil {
		return fmt.Errorf("a plain child: %w", err)
	}
	for name, flag := range map[string]uintptr{
		"CLONE_NEWUSER": unix.CLONE_NEWUSER, "CLONE_NEWNS": unix.CLONE_NEWNS, "CLONE_NEWNET": unix.CLONE_NEWNET,
		"CLONE_NEWPID": unix.CLONE_NEWPID, "CLONE_NEWIPC": unix.CLONE_NEWIPC, "CLONE_NEWUTS": unix.CLONE_NEWUTS,
		"CLONE_NEWCGROUP": unix.CLONE_NEWCGROUP,
	} {
		cmd := exec.Command("/proc/self/exe", "-call", "none")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flag}
		err := cmd.Start()
		if err == nil {
			cmd.Wait()
			return fmt.Errorf("a child in a new namespace (%s) started", name)
		}
		if !errors.Is(err, syscall.EPERM) {
			return fmt.Errorf("%s: %w, want EPERM", name, err)
		}
	}
	return nil
}

func families() error {
	// Without the filter the kernel would give these a socket (AF_NETLINK)
	// or EPERM (AF_PACKET needs CAP_NET_RAW), not EAFNOSUPPORT.
	for name, af := range map[string]int{"AF_NETLINK": unix.AF_NETLINK, "AF_PACKET": unix.AF_PACKET} {
		fd, err := unix.Socket(af, unix.SOCK_DGRAM, 0)
		if err == nil {
			unix.Close(fd)
			return fmt.Errorf("socket(%s) was allowed", name)
		}
		if !errors.Is(err, unix.EAFNOSUPPORT) {
			return fmt.Errorf("socket(%s): %w, want EAFNOSUPPORT", name, err)
		}
	}
	for name, af := range map[string]int{"AF_UNIX": unix.AF_UNIX, "AF_INET": unix.AF_INET, "AF_INET6": unix.AF_INET6} {
		fd, err := unix.Socket(af, unix.SOCK_STREAM, 0)
		if err != nil {
			return fmt.Errorf("socket(%s): %w", name, err)
		}
		unix.Close(fd)
	}
	return nil
}

func wx() error {
	rw, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return fmt.Errorf("a writable mapping: %w", err)
	}
	unix.Munmap(rw)
	b, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err == nil {
		unix.Munmap(b)
		return errors.New("a writable and executable mapping was allowed")
	}
	return want(errors.Is(err, unix.EPERM), "mmap(PROT_WRITE|PROT_EXEC): %v, want EPERM", err)
}

func personality() error {
	// The lock lets the personality a service starts with be set again,
	// and nothing else.
	if _, _, errno := unix.RawSyscall(unix.SYS_PERSONALITY, 0, 0, 0); errno != 0 { // PER_LINUX
		return fmt.Errorf("personality(PER_LINUX): %w", errno)
	}
	_, _, errno := unix.RawSyscall(unix.SYS_PERSONALITY, 0x0008, 0, 0) // PER_LINUX32
	return want(errno == unix.EPERM, "personality(PER_LINUX32): errno %d, want EPERM", errno)
}

func suid() error {
	name := filepath.Join(os.Getenv("STATE_DIRECTORY"), "probe-suid")
	if err := os.WriteFile(name, nil, 0o600); err != nil {
		return err
	}
	defer os.Remove(name)
	if err := unix.Chmod(name, 0o700); err != nil {
		return fmt.Errorf("chmod 0700: %w", err)
	}
	err := unix.Chmod(name, 0o4700)
	return want(errors.Is(err, unix.EPERM), "chmod 04700: %v, want EPERM", err)
}

// mount is a line of /proc/self/mountinfo.
type mount struct {
	opts, fstype, super string
}

func mountInfo() (map[string]mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]mount{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint opts [optional...] - fstype source super
		before, after, ok := strings.Cut(sc.Text(), " - ")
		f, g := strings.Fields(before), strings.Fields(after)
		if !ok || len(f) < 6 || len(g) < 3 {
			continue
		}
		m[f[4]] = mount{opts: f[5], fstype: g[0], super: g[2]} // the last one mounted wins
	}
	return m, sc.Err()
}

func hasOpt(opts, o string) bool { return slices.Contains(strings.Split(opts, ","), o) }

func readOnly(mounts map[string]mount, path string) error {
	m, ok := mounts[path]
	if !ok {
		return fmt.Errorf("%s is not a mount", path)
	}
	return want(hasOpt(m.opts, "ro"), "%s is mounted %s", path, m.opts)
}

func cgroups(mounts map[string]mount) error {
	n := 0
	for path, m := range mounts {
		if path != "/sys/fs/cgroup" && !strings.HasPrefix(path, "/sys/fs/cgroup/") {
			continue
		}
		if !hasOpt(m.opts, "ro") {
			return fmt.Errorf("%s is mounted %s", path, m.opts)
		}
		if m.fstype == "cgroup" || m.fstype == "cgroup2" {
			n++
		}
	}
	return want(n > 0, "no cgroup hierarchy is mounted")
}

func entries(dir string) []string {
	des, err := os.ReadDir(dir)
	if err != nil {
		return []string{"(" + err.Error() + ")"}
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// rootDir: the root is the service's own, holding the mount points systemd
// and BindReadOnlyPaths= made, and nothing else of the host.
func rootDir() error {
	allowed := []string{"dev", "etc", "home", "proc", "root", "run", "sys", "tmp", "usr", "var"}
	for _, name := range entries("/") {
		if !slices.Contains(allowed, name) {
			return fmt.Errorf("/%s is in the service's root", name)
		}
	}
	for _, gone := range []string{"/bin", "/usr/bin", "/usr/lib", "/var/log", "/srv", "/run/systemd/private", "/run/dbus"} {
		if _, err := os.Lstat(gone); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s is visible: %v", gone, err)
		}
	}
	// What the daemon needs is there: its files, the resolver's and the
	// CA certificates an HTTPS upstream or etcd is verified with.
	for _, need := range []string{"/usr/local/bin/awakend", "/etc/awakend/awakend.yaml", "/etc/resolv.conf"} {
		if _, err := os.Stat(need); err != nil {
			return err
		}
	}
	if _, err := net.DefaultResolver.LookupHost(context.Background(), "localhost"); err != nil {
		return err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		return fmt.Errorf("the system's CA certificates: %w", err)
	}
	// On Linux the pool is the certificates read from the files, which
	// Subjects counts.
	return want(len(pool.Subjects()) > 0, "the system's CA pool is empty")
}

func protectSystem(mounts map[string]mount) error {
	for _, dir := range []string{"/", "/etc", "/usr/local/bin/awakend"} {
		if err := readOnly(mounts, dir); err != nil {
			return err
		}
	}
	if err := os.Mkdir("/etc/probe", 0o700); !errors.Is(err, unix.EROFS) {
		if err == nil {
			os.Remove("/etc/probe")
		}
		return fmt.Errorf("mkdir /etc/probe: %v, want EROFS", err)
	}
	name := filepath.Join(os.Getenv("STATE_DIRECTORY"), "probe-write")
	if err := os.WriteFile(name, nil, 0o600); err != nil {
		return fmt.Errorf("the state directory: %w", err)
	}
	return os.Remove(name)
}

func protectHome() error {
	for _, dir := range []string{"/home", "/root", "/run/user"} {
		des, err := os.ReadDir(dir)
		if err == nil && len(des) > 0 {
			return fmt.Errorf("%s lists %d entries", dir, len(des))
		}
		if err != nil && !errors.Is(err, os.ErrPermission) && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: %w", dir, err)
		}
	}
	return nil
}

func privateTmp(mounts map[string]mount) error {
	for _, dir := range []string{"/tmp", "/var/tmp"} {
		m, ok := mounts[dir]
		if !ok || hasOpt(m.opts, "ro") {
			return fmt.Errorf("%s: not a writable mount of its own (%+v)", dir, m)
		}
		f, err := os.CreateTemp(dir, "probe")
		if err != nil {
			return err
		}
		f.Close()
		os.Remove(f.Name())
	}
	return nil
}

func privateDevices(mounts map[string]mount) error {
	if m := mounts["/dev"]; m.fstype != "tmpfs" {
		return fmt.Errorf("/dev is %q, want a tmpfs of its own", m.fstype)
	}
	des, err := os.ReadDir("/dev")
	if err != nil {
		return err
	}
	for _, de := range des {
		if de.Type()&os.ModeDevice != 0 && de.Type()&os.ModeCharDevice == 0 {
			return fmt.Errorf("/dev/%s is a block device", de.Name())
		}
	}
	for _, gone := range []string{"/dev/kmsg", "/dev/mem", "/dev/rtc0"} {
		if _, err := os.Lstat(gone); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s is there: %v", gone, err)
		}
	}
	f, err := os.OpenFile("/dev/null", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

func procMount(mounts map[string]mount) error {
	m := mounts["/proc"]
	if !strings.Contains(m.super, "hidepid=invisible") || !strings.Contains(m.super, "subset=pid") {
		return fmt.Errorf("/proc is mounted %q", m.super)
	}
	if _, err := os.Stat("/proc/sys"); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("/proc/sys is visible: %v", err)
	}
	return nil
}

// notify: systemd gives NOTIFY_SOCKET to the main process only, and binds
// the socket into the root of that process alone.
func notify() error {
	if _, ok := os.LookupEnv("NOTIFY_SOCKET"); ok {
		return errors.New("NOTIFY_SOCKET is set for a process that is not the main one")
	}
	if _, err := os.Stat("/run/systemd/notify"); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("/run/systemd/notify is reachable: %v", err)
	}
	return nil
}

// queue creates a System V message queue and leaves it: RemoveIPC=yes
// removes it when the service stops, which the test checks from outside.
func queue() error {
	if _, _, errno := unix.RawSyscall(unix.SYS_MSGGET, unix.IPC_PRIVATE, unix.IPC_CREAT|0o600, 0); errno != 0 {
		return fmt.Errorf("msgget: %w", errno)
	}
	return nil
}
