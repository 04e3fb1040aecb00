package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// clusterMsg is any NODE_CLUSTER message a worker sends
// (docs/node-cluster-protocol.md §5.2 and §5.3). Fields that Node may send as null, a number or
// a string are kept raw.
type clusterMsg struct {
	Cmd      string          `json:"cmd"`
	Act      string          `json:"act"`
	Seq      *int64          `json:"seq"`
	Ack      *int64          `json:"ack"`
	Accepted *bool           `json:"accepted"`
	Key      string          `json:"key"`
	Index    json.RawMessage `json:"index"`
	Data     json.RawMessage `json:"data"`
	Address  json.RawMessage `json:"address"`
	Port     json.RawMessage `json:"port"`
	AddrType json.RawMessage `json:"addressType"`
	FD       json.RawMessage `json:"fd"`
	Flags    json.RawMessage `json:"flags"`
	Backlog  json.RawMessage `json:"backlog"`

	ReadableAll bool `json:"readableAll"`
	WritableAll bool `json:"writableAll"`
}

// jsString renders a raw JSON value as JavaScript's String() would inside a template literal:
// absent → "undefined", null → "null", strings unquoted, numbers as written.
func jsString(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "undefined"
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	return string(raw)
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}

func rawInt(raw json.RawMessage) (int, bool) {
	raw = bytes.TrimSpace(raw)
	if isNull(raw) {
		return 0, false
	}
	n, err := strconv.Atoi(string(raw))
	return n, err == nil
}

// key is Node's primary key for a server: `${address}:${port}:${addressType}:${fd}:${index}`
// (docs/node-cluster-protocol.md §5.6). Deriving it the same way gives Node's sharing
// semantics: the n-th concurrent listen on the same address in every worker shares one socket.
func (m *clusterMsg) key() string {
	return fmt.Sprintf("%s:%s:%s:%s:%s", jsString(m.Address), jsString(m.Port), jsString(m.AddrType), jsString(m.FD), jsString(m.Index))
}

// listenSpec turns a queryServer into the socket to open, or an error errno for the worker.
func (m *clusterMsg) listenSpec() (listenSpec, error) {
	var ls listenSpec
	if !isNull(m.FD) {
		if fd, ok := rawInt(m.FD); ok && fd >= 0 {
			// listen({fd}) names an fd of the primary in Node; corral's daemon has no fds to
			// lend, so the worker gets EINVAL rather than some unrelated socket.
			return ls, fmt.Errorf("listen({fd: %d}) is not supported in cluster mode", fd)
		}
	}
	addrType := jsString(m.AddrType)
	address := ""
	if !isNull(m.Address) {
		address = jsString(m.Address)
	}
	port, _ := rawInt(m.Port)
	flags, _ := rawInt(m.Flags)
	backlog, _ := rawInt(m.Backlog)
	ls.backlog = backlog
	switch addrType {
	case "-1":
		ls.network = "unix"
		ls.address = address
		ls.readableAll, ls.writableAll = m.ReadableAll, m.WritableAll
		if address == "" {
			return ls, fmt.Errorf("unix socket without a path")
		}
		return ls, nil
	case "udp4", "udp6":
		ls.network = "udp"
		ls.ip4 = addrType == "udp4"
		ls.ip6 = addrType == "udp6"
		ls.ipv6Only = flags&1 != 0
		ls.reuseAddr = flags&4 != 0
	default:
		ls.network = "tcp"
		ls.ip6 = addrType == "6"
		ls.ip4 = addrType == "4" && address != ""
		ls.ipv6Only = flags&1 != 0
	}
	if port < 0 || port > 65535 {
		return ls, fmt.Errorf("port %d out of range", port)
	}
	ls.address = address
	ls.port = port
	return ls, nil
}

// reply builds a primary → worker NODE_CLUSTER message.
type reply map[string]any

func clusterReply(fields reply) reply {
	fields["cmd"] = "NODE_CLUSTER"
	return fields
}
