// Package logic is the decision of the {{name}} plugin, as plain Go: no
// bindings, no I/O, so `go test ./logic` checks it natively.
package logic

import "strings"

// IsPing says whether a message text is "ping", in any case, with any
// spaces around it.
func IsPing(body string) bool {
	return strings.EqualFold(strings.TrimSpace(body), "ping")
}
