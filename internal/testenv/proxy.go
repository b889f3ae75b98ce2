package testenv

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Proxy forwards TCP connections on a loopback port to a server, and can
// hold back what the server sends (its acknowledgements, for a NATS
// server) while passing on what clients send: a server that is slow to
// answer, as one waiting for its disk or electing a stream leader is.
type Proxy struct {
	// URL is the server's URL with the proxy's address.
	URL string

	mu     sync.Mutex
	held   bool
	resume chan struct{} // closed when the hold ends
}

// StartProxy starts a proxy in front of the server at rawURL (a URL with a
// host and port, such as a NATS client URL), stopped when the test ends.
func StartProxy(t testing.TB, rawURL string) *Proxy {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	u.Host = ln.Addr().String()
	p := &Proxy{URL: u.String(), resume: make(chan struct{})}
	close(p.resume)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		p.Hold(false)
		wg.Wait()
	})
	wg.Go(func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, client, server)
			mu.Unlock()
			wg.Go(func() { io.Copy(server, client); server.Close() })
			wg.Go(func() { p.copyHeld(client, server); client.Close() })
		}
	})
	return p
}

// Hold holds back what servers send from now on (on), or sends on what
// was held and what comes after (off).
func (p *Proxy) Hold(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on == p.held {
		return
	}
	p.held = on
	if on {
		p.resume = make(chan struct{})
	} else {
		close(p.resume)
	}
}

// copyHeld copies from the server to the client, waiting out holds before
// it writes what it read.
func (p *Proxy) copyHeld(client, server net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			p.mu.Lock()
			resume := p.resume
			p.mu.Unlock()
			<-resume
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
