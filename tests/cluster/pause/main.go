// Command pause is the pod sandbox ("infra") container of parley's local
// cluster: it holds the pod's namespaces open and does nothing else. It
// exits 0 on SIGINT or SIGTERM and, as PID 1 of a pod with a shared PID
// namespace, reaps orphaned children on SIGCHLD. Built static
// (CGO_ENABLED=0) by tests/envtest/setup-k8s.sh pause; no dependencies.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for { // reap every exited child; several SIGCHLDs may have coalesced
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
