package lab

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"time"
)

// StopAPIServer stops the API server of a Kubernetes lab (SIGTERM, as a
// control plane upgrade or crash makes it go away): the kubelets, the
// kube-proxies and the agents lose it until StartAPIServer. etcd keeps
// every object.
func (l *Lab) StopAPIServer() error {
	if l.kube == nil {
		return ErrNoKubernetes
	}
	k := l.kube
	k.procMu.Lock()
	i := slices.IndexFunc(k.procs, func(p *kubeProc) bool { return p.name == "kube-apiserver" })
	if i < 0 || k.stopping {
		k.procMu.Unlock()
		return fmt.Errorf("%w: the API server is not running", ErrKubeComponent)
	}
	p := k.procs[i]
	k.procs = slices.Delete(k.procs, i, i+1)
	k.apiserverArgv = p.argv
	k.procMu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	l.log.Info("API server stopped")
	return nil
}

// StartAPIServer starts the API server StopAPIServer stopped, with the
// same arguments, and waits until it is ready.
func (l *Lab) StartAPIServer(ctx context.Context) error {
	if l.kube == nil {
		return ErrNoKubernetes
	}
	k := l.kube
	k.procMu.Lock()
	argv := k.apiserverArgv
	k.apiserverArgv = nil
	k.procMu.Unlock()
	if argv == nil {
		return fmt.Errorf("%w: the API server was not stopped", ErrKubeComponent)
	}
	if err := k.run("kube-apiserver", argv); err != nil {
		return err
	}
	if err := k.waitAPI(ctx); err != nil {
		return err
	}
	l.log.Info("API server started again")
	return nil
}
