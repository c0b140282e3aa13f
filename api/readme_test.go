package api_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
)

// readmePath is the README whose generated sections the tests keep current.
const readmePath = "../README.md"

// requireReadmeSection asserts that the README's section between the markers
// <!-- name:begin --> and <!-- name:end --> is want. With TESSERA_UPDATE_README=1 it writes
// want there instead: the README's generated tables have one source, the Go code.
func requireReadmeSection(t *testing.T, name, want string) {
	t.Helper()
	readme, err := os.ReadFile(readmePath)
	require.NoError(t, err)
	begin, end := "<!-- "+name+":begin -->\n", "<!-- "+name+":end -->"
	text := string(readme)
	i, j := strings.Index(text, begin), strings.Index(text, end)
	require.True(t, i >= 0 && j > i, "README.md has no section %s…%s", begin, end)
	got := text[i+len(begin) : j]
	if os.Getenv("TESSERA_UPDATE_README") != "" && got != want {
		require.NoError(t, os.WriteFile(readmePath, []byte(text[:i+len(begin)]+want+text[j:]), 0o644))
		return
	}
	require.Equal(t, want, got, "README.md's %s section is out of date: run TESSERA_UPDATE_README=1 go test ./api -run TestReadme", name)
}

// TestReadmeProblems keeps the README's table of problem codes equal to api.Problems.
func TestReadmeProblems(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("| Status | `code` | Title | Meaning |\n|---|---|---|---|\n")
	for _, p := range api.Problems() {
		status := fmt.Sprint(p.Status)
		if p.Status == 0 {
			status = "other"
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s |\n", status, p.Code, p.Title, p.Description)
	}
	requireReadmeSection(t, "problems", b.String())
}
