// Command tessera is Tessera's one binary: the API server and River workers (serve), workers
// alone (worker), migrations (migrate), tenant and key administration, and the OpenAPI
// document (openapi). Configuration comes from environment variables; see config.go.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil { //lint:swallow cobra has printed it; the exit status says it failed
		os.Exit(1)
	}
}
