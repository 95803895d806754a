package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/awakend/awakend/pack"
)

// fleetCmd shows the fleet: `awakend fleet status` (one line per live
// host; exit 1 when a host rejected the current pack or serves another)
// and `awakend fleet packs` (the stored packs, newest first).
func fleetCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "status" && args[0] != "packs") {
		return usageError(fmt.Errorf("fleet: want a subcommand: status or packs"))
	}
	sub := args[0]
	fs := flagSet("fleet "+sub, stderr)
	ef := addEtcdFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return usageError(err)
	}
	st, _, err := ef.store()
	if err != nil {
		return err
	}
	defer st.Close()
	cur, _, err := st.Current(ctx)
	if err != nil {
		return err
	}
	if sub == "packs" {
		metas, err := st.Packs(ctx)
		if err != nil {
			return err
		}
		for _, m := range metas {
			mark := " "
			if m.ID == cur.ID {
				mark = "*"
			}
			fmt.Fprintf(stdout, "%s %s  %s  %-20s %4d files %9d bytes\n", mark, pack.Short(m.ID),
				m.PublishedAt.Local().Format(time.DateTime), m.Publisher, m.Files, m.Size)
		}
		return nil
	}
	if cur.ID == "" {
		return fmt.Errorf("nothing published under %s", st.Prefix())
	}
	acks, _, err := st.Hosts(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "current pack %s\n", pack.Short(cur.ID))
	return report(stdout, cur.ID, acks, false)
}
