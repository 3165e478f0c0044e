package cli

import (
	"net"
	"os"
	"strconv"
)

// adminAdvertised is the admin server's address as other machines reach
// it, recorded in the agent's registration for `shale cost`: its listener
// address, with an unspecified IP (0.0.0.0, ::) replaced by the Kafka
// listener's advertised host, else the machine's host name.
func adminAdvertised(addr net.Addr, advertisedHost string) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	host := ta.IP.String()
	if ta.IP.IsUnspecified() {
		host = advertisedHost
		if host == "" {
			if h, err := os.Hostname(); err == nil && h != "" {
				host = h
			} else {
				host = "localhost"
			}
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(ta.Port))
}
