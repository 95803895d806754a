package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/awakend/awakend/config"
	"github.com/awakend/awakend/fleet"
	"github.com/awakend/awakend/pack"
	"github.com/awakend/awakend/settings"
)

// etcdFlags are the flags of the commands that talk to a fleet's etcd.
type etcdFlags struct {
	settings  *settingsFlags
	endpoints *string
	prefix    *string
}

func addEtcdFlags(fs *flag.FlagSet) *etcdFlags {
	return &etcdFlags{
		settings:  addSettingsFlags(fs, false),
		endpoints: fs.String("endpoints", "", "etcd client `URLs`, comma-separated (default: the settings' source.etcd.endpoints)"),
		prefix:    fs.String("prefix", "", "the fleet's key `prefix` (default: the settings' source.etcd.prefix)"),
	}
}

// store reads the settings, lets the flags override them, and connects.
func (f *etcdFlags) store() (*fleet.Store, settings.Settings, error) {
	s, _, err := settings.Load(*f.settings.file, os.Environ(), nil)
	if err != nil {
		return nil, s, err
	}
	endpoints := s.Source.Etcd.Endpoints
	if *f.endpoints != "" {
		endpoints = strings.Split(*f.endpoints, ",")
	}
	prefix := s.Source.Etcd.Prefix
	if *f.prefix != "" {
		prefix = *f.prefix
	}
	if len(endpoints) == 0 {
		return nil, s, errors.New("no etcd endpoints: set source.etcd.endpoints in the settings or pass --endpoints")
	}
	st, err := fleet.Dial(fleet.Options{Endpoints: endpoints, Prefix: prefix})
	return st, s, err
}

// publish validates a config directory with check's code and publishes
// it to the fleet as one pack, or moves the fleet back to an earlier one.
func publish(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	oneShot()
	fs := flagSet("publish", stderr)
	ef := addEtcdFlags(fs)
	wait := fs.Bool("wait", false, "wait until every live host has applied or rejected the pack")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long --wait waits")
	rollback := fs.String("rollback", "", "move the fleet back to the stored pack with this `ID` (or a prefix of it) instead of publishing")
	force := fs.Bool("force", false, "move the pointer even if another publish moved it since this one began")
	expect := fs.String("expect", "", "publish only on top of the pack with this `ID` (or prefix): the one reviewed, say")
	keep := fs.Int("keep", fleet.DefaultKeep, "how many packs to keep for rollback")
	assume := fs.Bool("assume-secrets", false, "treat ${VAR}, ${credential:…} and absolute ${file:…} references that do not resolve here as present: they resolve on each host")
	if err := parseInterspersed(fs, args); err != nil {
		return usageError(err)
	}
	if fs.NArg() > 1 || (*rollback != "" && fs.NArg() > 0) {
		return fmt.Errorf("publish takes one directory, or --rollback ID alone; got %q", fs.Args())
	}
	st, s, err := ef.store()
	if err != nil {
		return err
	}
	defer st.Close()
	host, _ := os.Hostname()
	// The pointer as it is before anything else: the publish moves it only
	// if no one else did in the meantime.
	seen, _, err := st.Current(ctx)
	if err != nil {
		return err
	}
	if *expect != "" && !strings.HasPrefix(seen.ID, *expect) {
		return invalid(fmt.Errorf("the current pack is %s, not %s (--expect): nothing published", shortOrNone(seen.ID), *expect))
	}
	opts := fleet.PublishOptions{Seen: seen, Force: *force, Keep: *keep, Publisher: host}

	var pub fleet.Published
	if *rollback != "" {
		if pub, err = st.Rollback(ctx, *rollback, opts); err != nil {
			return refused(err)
		}
	} else {
		dir := s.ConfigDir
		if fs.NArg() == 1 {
			dir = fs.Arg(0)
		}
		p, err := packDir(dir, s, *assume, stdout)
		if err != nil {
			return err
		}
		if pub, err = st.Publish(ctx, p, opts); err != nil {
			return refused(err)
		}
	}
	id := pack.Short(pub.Meta.ID)
	switch {
	case pub.Revision == 0:
		fmt.Fprintf(stdout, "pack %s is already current\n", id)
	case *rollback != "":
		fmt.Fprintf(stdout, "rolled back: pack %s is current (was %s), revision %d\n", id, shortOrNone(pub.Previous), pub.Revision)
	default:
		fmt.Fprintf(stdout, "published pack %s (was %s): %d files, %d bytes, %d compressed in %d chunks, revision %d\n",
			id, shortOrNone(pub.Previous), pub.Meta.Files, pub.Meta.Size, pub.Meta.Compressed, pub.Meta.Chunks, pub.Revision)
	}
	if !*wait {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	acks, err := st.Await(wctx, pub.Meta.ID)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return report(stdout, pub.Meta.ID, acks, err != nil)
}

// refused makes a publish that lost a race exit 1, like a rejected
// directory: it ran, and the answer is no.
func refused(err error) error {
	var ce *fleet.ConflictError
	if errors.As(err, &ce) {
		return invalid(err)
	}
	return err
}

// packDir validates dir as check does, reading it once, and packs exactly
// the files that load read. An invalid directory prints its diagnostics
// and is exit 1; nothing is published.
func packDir(dir string, s settings.Settings, assume bool, stdout io.Writer) (*pack.Pack, error) {
	rec := pack.Record(os.DirFS(dir))
	opts := checkOptions(s)
	if assume {
		opts = assumeSecrets(opts)
	}
	cfg, _, rep, err := loadFS(dir, rec, opts)
	if err != nil {
		return nil, err
	}
	if !rep.Valid {
		for _, d := range rep.Diagnostics {
			fmt.Fprintln(stdout, d.String())
		}
		fmt.Fprintln(stdout, rep.Summary+"; nothing published")
		return nil, invalid(errReported)
	}
	names := append([]string(nil), cfg.Files...)
	for _, r := range cfg.Referenced {
		if !filepath.IsAbs(r) { // a file of the directory; absolute ones and credentials are each host's
			names = append(names, filepath.ToSlash(r))
		}
	}
	return rec.Pack(names)
}

// standIn is what an assumed secret reads as while publishing.
const standIn = "awakend-publish-stand-in"

// assumeSecrets makes the references a publisher cannot resolve stand in
// as present: variables not set here, credentials, files outside the
// directory that cannot be read here.
func assumeSecrets(o config.Options) config.Options {
	lookup := o.LookupEnv
	o.LookupEnv = func(k string) (string, bool) {
		if v, ok := lookup(k); ok {
			return v, true
		}
		return standIn, true
	}
	if o.CredentialsDir == "" {
		o.CredentialsDir = "/run/credentials/awakend.service"
	}
	read := o.ReadFile
	o.ReadFile = func(path string) ([]byte, error) {
		b, err := read(path)
		if err != nil && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission)) {
			return []byte(standIn), nil
		}
		return b, err
	}
	return o
}

func shortOrNone(id string) string {
	if id == "" {
		return "none"
	}
	return pack.Short(id)
}

// report prints one line per host for pack id and fails if a host
// rejected it, serves another pack, or (timedOut) did not answer.
func report(w io.Writer, id string, acks []fleet.Ack, timedOut bool) error {
	if len(acks) == 0 {
		fmt.Fprintln(w, "no live host follows the fleet")
		return invalid(errReported)
	}
	bad := 0
	for _, a := range acks {
		state := a.Last.Result
		switch {
		case !a.Tried(id):
			state, bad = "no answer yet (serving "+shortOrNone(a.Pack)+")", bad+1
		case a.Pack != id:
			state, bad = "rejected (serving "+shortOrNone(a.Pack)+")", bad+1
		case a.Stale:
			state += " (stale: etcd unreachable)"
		}
		fmt.Fprintf(w, "%-24s %-12s version %-6d fingerprint %-12s %s at %s\n", a.Host, shortOrNone(a.Pack), a.Version,
			pack.Short(a.Fingerprint), state, a.Last.At.Local().Format(time.DateTime))
		if a.Last.Pack == id && a.Pack != id {
			for _, d := range a.Last.Diagnostics {
				fmt.Fprintf(w, "    %s\n", d)
			}
		}
	}
	if bad > 0 {
		fmt.Fprintf(w, "%d of %d hosts do not serve pack %s\n", bad, len(acks), pack.Short(id))
		return invalid(errReported)
	}
	if timedOut {
		return invalid(errors.New("timed out"))
	}
	fmt.Fprintf(w, "all %d hosts serve pack %s\n", len(acks), pack.Short(id))
	return nil
}
