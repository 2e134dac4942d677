package lab

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The process serving a lab listens on a unix socket in the lab's state dir
// so that attached processes (Open) can stop and start backends, as the
// dead-backend scenario does. One request per connection: "stop POD" or
// "start POD"; the answer is "ok" or "error: …".
const controlSocket = "control.sock"

func (l *Lab) startControl() error {
	p := filepath.Join(l.stateDir(), controlSocket)
	_ = os.Remove(p)
	ln, err := net.Listen("unix", p)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	l.control = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go l.serveControl(c)
		}
	}()
	return nil
}

func (l *Lab) serveControl(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return
	}
	verb, pod, _ := strings.Cut(strings.TrimSpace(line), " ")
	if p, ok := l.Pod(pod); !ok || !p.Backend {
		fmt.Fprintf(c, "error: %s is not a backend\n", pod)
		return
	}
	switch verb {
	case "stop":
		err = l.servers.stopPod(pod)
	case "start":
		err = l.servers.startPod(pod)
	default:
		err = fmt.Errorf("unknown request %q", verb)
	}
	if err != nil {
		fmt.Fprintf(c, "error: %v\n", err)
		return
	}
	fmt.Fprintln(c, "ok")
}

// controlRequest sends a request to the process serving the lab.
func (l *Lab) controlRequest(verb, pod string) error {
	c, err := net.DialTimeout("unix", filepath.Join(l.stateDir(), controlSocket), 2*time.Second)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotOwner, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "%s %s\n", verb, pod); err != nil {
		return err
	}
	resp, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("lab control: %w", err)
	}
	if resp = strings.TrimSpace(resp); resp != "ok" {
		return errors.New("lab control: " + strings.TrimPrefix(resp, "error: "))
	}
	return nil
}
