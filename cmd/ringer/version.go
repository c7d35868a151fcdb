package main

import (
	"errors"
	"fmt"
	"io"
	"runtime/debug"
)

// revision is the VCS revision when the build has no VCS information of its own (a container build, whose
// context leaves out .git): the Dockerfile sets it with -ldflags "-X main.revision=...".
var revision = ""

// printVersion prints the module's version and the VCS revision the binary was built from, as the Go
// toolchain recorded them.
func printVersion(w io.Writer) error {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return errors.New("version: this binary carries no build information")
	}
	rev, modified, at := "unknown", false, ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		case "vcs.time":
			at = s.Value
		}
	}
	if rev == "unknown" && revision != "" {
		rev = revision
	}
	if modified {
		rev += " (modified)"
	}
	fmt.Fprintf(w, "ringer %s\nmodule %s\nrevision %s\n", bi.Main.Version, bi.Main.Path, rev)
	if at != "" {
		fmt.Fprintf(w, "committed %s\n", at)
	}
	fmt.Fprintf(w, "go %s\n", bi.GoVersion)
	return nil
}
