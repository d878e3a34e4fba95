//go:build !linux

package main

// stopWithGoRun does nothing off Linux (no parent-death signal): stop the
// emulator itself, or run a built binary.
func stopWithGoRun() error { return nil }
