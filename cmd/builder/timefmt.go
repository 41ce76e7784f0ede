package main

import (
	"time"

	units "github.com/docker/go-units"
)

// agoAt is how long before now t was, in go-units' words as docker's
// images, history and ps say it ("Less than a second ago", "About a
// minute ago", "2 hours ago"). Every CREATED-like column uses it.
func agoAt(t, now time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	return units.HumanDuration(now.Sub(t)) + " ago"
}
