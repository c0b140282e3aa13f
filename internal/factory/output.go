package factory

import (
	"bytes"
	"sync"
)

// Output is a bytes.Buffer that several writers may write to at once: a process's stdout and
// stderr, or River's workers logging from their goroutines.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

// String returns what was written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
