//go:build !race

package ecoid

const raceEnabled = false
