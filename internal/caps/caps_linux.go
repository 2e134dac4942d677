// Package caps checks, at the agent's start, that the process holds the
// Linux capabilities its configuration needs, and names each one missing.
package caps

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// capability numbers from linux/capability.h.
const (
	capNetAdmin = 12
	capNetRaw   = 13
	capSysAdmin = 21
)

var capNames = map[int]string{capNetAdmin: "CAP_NET_ADMIN", capNetRaw: "CAP_NET_RAW", capSysAdmin: "CAP_SYS_ADMIN"}

// effectiveCaps returns the effective capability set of the process.
func effectiveCaps() (uint64, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("capget: %w", err)
	}
	return uint64(data[0].Effective) | uint64(data[1].Effective)<<32, nil
}

// ErrPrivileges reports missing capabilities; its text names them.
type ErrPrivileges struct{ Missing []string }

func (e *ErrPrivileges) Error() string {
	return "missing capabilities " + strings.Join(e.Missing, ", ") +
		" (run as root, or grant them: setcap cap_net_raw,cap_net_admin+ep; entering another network namespace also needs CAP_SYS_ADMIN)"
}

// Check returns an *ErrPrivileges naming every capability the agent needs
// (CAP_NET_RAW, CAP_NET_ADMIN, and CAP_SYS_ADMIN when needNetns: entering
// another network namespace) and the process lacks.
func Check(needNetns bool) error {
	eff, err := effectiveCaps()
	if err != nil {
		return err
	}
	need := []int{capNetRaw, capNetAdmin}
	if needNetns {
		need = append(need, capSysAdmin)
	}
	var missing []string
	for _, c := range need {
		if eff&(1<<c) == 0 {
			missing = append(missing, capNames[c])
		}
	}
	if len(missing) > 0 {
		return &ErrPrivileges{Missing: missing}
	}
	return nil
}
