package main

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tessera/tessera/bench/internal/report"
)

// The markers around the part of bench/README.md that make bench writes.
const (
	beginMarker = "<!-- make bench: begin (written by bench/run; edits between the markers are overwritten) -->"
	endMarker   = "<!-- make bench: end -->"
)

// record is one make bench run: where and how it ran and every step's outcome. make bench
// writes it as JSON next to the results (.tessera/bench/run.json); bench/run -render reads one
// back to write the README again.
type record struct {
	Started  time.Time     `json:"started"`
	Elapsed  time.Duration `json:"elapsed"`
	Commit   string        `json:"commit"`
	Machine  string        `json:"machine"`
	Postgres string        `json:"postgres"`
	Load     [2]string     `json:"load"` // load average at the start and at the end
	Command  string        `json:"command"`
	Quick    bool          `json:"quick"`
	Steps    []step        `json:"steps"`
}

// step is one program run: its command line, what it reported, the memory of the process
// that ran Tessera's code, its wall time, its stdout (Markdown) and, when it failed or did not
// run, why.
type step struct {
	Command string          `json:"command"`
	Results []report.Result `json:"results"`
	Memory  *memory         `json:"memory,omitempty"`
	Elapsed time.Duration   `json:"elapsed"`
	Output  string          `json:"output,omitempty"`
	Err     string          `json:"error,omitempty"`
	Skipped string          `json:"skipped,omitempty"`
}

// memory is the resident set size of the process that ran Tessera's code during a step:
// `tessera serve` sampled every 200 ms (peak and at the end, and when it had started), or the
// benchmark program itself (its peak, from the kernel's rusage; EndKiB and StartedKiB 0).
type memory struct {
	Process    string `json:"process"`
	PeakKiB    int64  `json:"peak_kib"`
	EndKiB     int64  `json:"end_kib,omitempty"`
	StartedKiB int64  `json:"started_kib,omitempty"`
}

// render returns the Markdown make bench puts between the README's markers.
func render(r record) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("## Latest `make bench`\n\n")
	size := "full sizes"
	if r.Quick {
		size = "quick sizes, a smoke run: the goals stated at 1M do not apply"
	}
	w("Run %s at commit %s, %s, %s; took %s; load average %s at the start, %s at the end (other work on the machine lowers every number). Command: `%s` (%s).\n\n",
		r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Commit, r.Machine, r.Postgres, r.Elapsed.Round(time.Second), r.Load[0], r.Load[1], r.Command, size)

	limit, limitUnit := map[string]float64{}, map[string]string{}
	w("### Limits: pgbench on the same cluster, in the same run\n\n| limit | measured | used for ratios (the best) |\n| --- | --- | --- |\n")
	for _, name := range limits {
		var measured []string
		for _, s := range r.Steps {
			for _, res := range s.Results {
				if res.Name == name {
					measured = append(measured, value(res.Value, res.Unit)+" ("+s.Command+")")
					limit[name], limitUnit[name] = max(limit[name], res.Value), res.Unit
				}
			}
		}
		if len(measured) == 0 {
			w("| %s | not measured | |\n", name)
			continue
		}
		w("| %s | %s | %s |\n", name, strings.Join(measured, "<br>"), value(limit[name], limitUnit[name]))
	}

	w("\n### Tessera against the limits and the goals\n\n")
	w("RSS is the resident memory of the process running Tessera's code during the benchmark: `tessera serve` (sampled every 200 ms) for the benchmarks against it, otherwise the benchmark program itself, whose peak includes generating its data.\n\n")
	w("| benchmark | path | Tessera | limit (same run) | ratio | goal | RSS |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	byName := map[string]float64{}
	for _, s := range r.Steps {
		for _, res := range s.Results {
			byName[res.Name] = res.Value
		}
	}
	seen := map[string]bool{}
	for _, s := range r.Steps {
		rss := s.Memory.String()
		rows := 0
		row := func(name, tessera, limitCell, ratioCell, goalCell string) {
			command := ""
			if rows == 0 {
				command = "`" + s.Command + "`"
			}
			w("| %s | %s | %s | %s | %s | %s | %s |\n", command, name, tessera, limitCell, ratioCell, goalCell, rss)
			rss = ""
			rows++
		}
		for _, res := range s.Results {
			if slices.Contains(limits, res.Name) {
				continue
			}
			seen[res.Name] = true
			limitCell, ratioCell, ratio := "", "", math.NaN()
			if res.Limit != "" {
				if l, ok := limit[res.Limit]; ok && l > 0 {
					ratio = res.Value / l
					limitCell, ratioCell = res.Limit+": "+value(l, limitUnit[res.Limit]), strconv.FormatFloat(100*ratio, 'f', 1, 64)+"%"
				} else {
					limitCell = res.Limit + ": not measured"
				}
			}
			row(cell(res.Name), value(res.Value, res.Unit), cell(limitCell), ratioCell, goalCell(res, ratio, byName))
		}
		switch {
		case s.Err != "":
			row("**failed**: "+cell(s.Err), "", "", "", "")
		case s.Skipped != "":
			row("not run: "+cell(s.Skipped), "", "", "", "")
		case rows == 0 && !slices.ContainsFunc(s.Results, func(res report.Result) bool { return slices.Contains(limits, res.Name) }):
			row("(reported no result)", "", "", "", "")
		}
	}
	var missing []string
	for name := range goals {
		if !seen[name] {
			missing = append(missing, "`"+name+"`")
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		w("\nGoals whose result this run did not produce: %s.\n", strings.Join(missing, ", "))
	}

	w("\n### Each benchmark's output (with EXPLAIN (ANALYZE, BUFFERS) of its hot queries)\n\n")
	for _, s := range r.Steps {
		if strings.TrimSpace(s.Output) == "" {
			continue
		}
		w("<details><summary><code>%s</code> (%s)</summary>\n\n%s\n\n</details>\n\n", s.Command, s.Elapsed.Round(time.Second), strings.TrimSpace(s.Output))
	}
	return b.String()
}

// goalCell is the goal for res, if any, with whether this run met it.
func goalCell(res report.Result, ratio float64, byName map[string]float64) string {
	g, ok := goals[res.Name]
	if !ok {
		return ""
	}
	var text string
	var met bool
	switch {
	case g.MinRatio > 0:
		text = fmt.Sprintf("≥ %.0f%% of the limit", 100*g.MinRatio)
		if math.IsNaN(ratio) {
			return text + ": no limit measured"
		}
		met = ratio >= g.MinRatio
	case g.Below > 0:
		text = "< " + value(g.Below, res.Unit)
		met = res.Value < g.Below
	case g.AtMost > 0:
		text = fmt.Sprintf("≤ %g× %s", g.AtMost, g.Of)
		of, ok := byName[g.Of]
		if !ok {
			return text + ": not measured"
		}
		met = res.Value <= g.AtMost*of
	}
	if met {
		return text + ": **met**"
	}
	return text + ": not met"
}

// String is the RSS cell: the process and its peak (and end) in MiB.
func (m *memory) String() string {
	if m == nil {
		return ""
	}
	s := fmt.Sprintf("%s: peak %s", m.Process, mib(m.PeakKiB))
	if m.EndKiB > 0 {
		s += ", at the end " + mib(m.EndKiB)
	}
	if m.StartedKiB > 0 {
		s += " (" + mib(m.StartedKiB) + " when started)"
	}
	return s
}

func mib(kib int64) string { return strconv.FormatFloat(float64(kib)/1024, 'f', 1, 64) + " MiB" }

// value formats a measured number with its unit: three significant digits at most, thousands
// separated ("5,012/s", "2.41 s", "0.482 ms").
func value(v float64, unit string) string {
	var s string
	switch a := math.Abs(v); {
	case a >= 100:
		s = thousands(int64(math.Round(v)))
	case a >= 10:
		s = strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		s = strconv.FormatFloat(v, 'f', 2, 64)
	default:
		s = strconv.FormatFloat(v, 'g', 3, 64)
	}
	switch {
	case unit == "":
		return s
	case strings.HasPrefix(unit, "/"):
		return s + unit
	}
	return s + " " + unit
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// cell makes text safe in a Markdown table cell: one line, pipes escaped.
func cell(text string) string {
	return strings.ReplaceAll(strings.Join(strings.Fields(text), " "), "|", `\|`)
}

// replaceBetweenMarkers returns readme with what lies between beginMarker and endMarker
// replaced by generated; the rest stays as it is.
func replaceBetweenMarkers(readme, generated string) (string, error) {
	begin := strings.Index(readme, beginMarker)
	end := strings.Index(readme, endMarker)
	if begin < 0 || end < 0 || end < begin {
		return "", errors.New("bench/README.md lacks the make bench markers in order: " + beginMarker + " ... " + endMarker)
	}
	return readme[:begin+len(beginMarker)] + "\n" + generated + readme[end:], nil
}
