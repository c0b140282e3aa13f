package errswallow_test

import (
	"testing"

	"golang.org/x/tools/go/analysis/analysistest"

	"github.com/tessera/tessera/internal/lint/errswallow"
)

func TestAnalyzer(t *testing.T) {
	t.Parallel()
	analysistest.Run(t, analysistest.TestData(), errswallow.Analyzer, "a")
}
