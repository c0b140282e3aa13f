// Command errswallow runs the errswallow analyzer as a vet tool:
//
//	go build -o bin/errswallow ./internal/lint/errswallow/cmd/errswallow
//	go vet -vettool=bin/errswallow ./...
//
// make check does both.
package main

import (
	"golang.org/x/tools/go/analysis/unitchecker"

	"github.com/tessera/tessera/internal/lint/errswallow"
)

func main() { unitchecker.Main(errswallow.Analyzer) }
