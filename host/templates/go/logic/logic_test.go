package logic

import "testing"

func TestIsPing(t *testing.T) {
	for body, want := range map[string]bool{
		"ping": true, "PING": true, "  Ping \n": true,
		"": false, "pin": false, "ping pong": false, "pinging": false,
	} {
		if got := IsPing(body); got != want {
			t.Errorf("IsPing(%q) = %v, want %v", body, got, want)
		}
	}
}
