// Package memory implements every Nexus store interface and the rate limiter in process
// memory. It is meant for tests, demos and single-process services: data lives as long as
// the process. Every type is safe for concurrent use.
package memory
