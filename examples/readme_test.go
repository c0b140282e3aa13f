package examples

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// update rewrites the README's embedded examples from the files: go test ./examples -run TestREADME -update
var update = flag.Bool("update", false, "rewrite the README's embedded examples from the files in examples/")

// embedded matches a README block that shows a file of examples/: a marker line naming the file,
// then a fenced code block holding the file's text.
var embedded = regexp.MustCompile("(?m)^<!-- embed (examples/[^ ]+) -->\n```([a-z]+)\n((?s:.*?))```\n")

// TestREADMEEmbedsExamples checks that the README shows every walk-through script, the shared
// lib.sh and the webhook receiver exactly as they are in examples/: the scripts CI runs are
// the commands the README shows.
func TestREADMEEmbedsExamples(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	shown := map[string]bool{}
	var stale []string
	updated := embedded.ReplaceAllStringFunc(string(readme), func(block string) string {
		m := embedded.FindStringSubmatch(block)
		file, err := os.ReadFile(filepath.Join("..", m[1]))
		require.NoError(t, err, "the README embeds %s", m[1])
		shown[m[1]] = true
		if m[3] != string(file) {
			stale = append(stale, m[1])
		}
		return fmt.Sprintf("<!-- embed %s -->\n```%s\n%s```\n", m[1], m[2], file)
	})
	if *update {
		require.NoError(t, os.WriteFile("../README.md", []byte(updated), 0o644))
		return
	}
	require.Empty(t, stale, "the README shows these files otherwise than they are: go test ./examples -run TestREADME -update")

	want, err := filepath.Glob("*.sh")
	require.NoError(t, err)
	want = append(want, "webhook-receiver/main.go")
	for _, file := range want {
		require.True(t, shown["examples/"+file], "the README does not embed examples/%s: add a line %q before a fenced block", file, "<!-- embed examples/"+file+" -->")
	}
}
