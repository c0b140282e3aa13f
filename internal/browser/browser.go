// Package browser renders pages in a real headless Chromium (Debian's `chromium`, which
// `make test` installs) for tests of what a person looks at: /docs and River UI. It drives
// the browser through the DevTools protocol (chromedp), so a test can send headers, wait for
// a page's scripts to draw, read the DOM and take a screenshot.
package browser

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Path is where Debian's chromium package installs the browser.
const Path = "/usr/bin/chromium"

// Page is a page as the browser drew it.
type Page struct {
	// HTML is the document's outer HTML once Ready matched.
	HTML string
	// Screenshot is a PNG of the viewport.
	Screenshot []byte
	// Failed lists the requests the page made that failed (blocked, refused, HTTP errors
	// are not failures): a page that reaches for another origin shows it here.
	Failed []string
	// Errors lists what the browser reported as errors while drawing the page (a request a
	// Content-Security-Policy refused, an inline style it blocked, a script error): a page
	// that needs more than its policy allows shows it here.
	Errors []string
}

// Options say how to open a page.
type Options struct {
	// Headers are sent with every request the page makes (for example Authorization).
	Headers map[string]string
	// Ready is a CSS selector the page must show before it counts as drawn.
	Ready string
	// Timeout bounds the whole render. Default 60 seconds.
	Timeout time.Duration
}

// Render opens url in a fresh headless Chromium with its own profile directory, waits for
// opts.Ready to be visible and returns the page. The test fails when Chromium is missing or
// the page never shows opts.Ready.
func Render(t testing.TB, url string, opts Options) Page {
	t.Helper()
	if _, err := exec.LookPath(Path); err != nil {
		t.Fatalf("browser: %s not found (make test installs Debian's chromium package): %v", Path, err)
	}
	if opts.Timeout == 0 {
		opts.Timeout = 60 * time.Second
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(Path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profileDir(t)),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 900),
	)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, opts.Timeout)
	defer cancelTimeout()

	var page Page
	chromedp.ListenTarget(ctx, func(ev any) {
		switch e := ev.(type) {
		case *network.EventLoadingFailed:
			page.Failed = append(page.Failed, fmt.Sprintf("%s: %s %s", e.RequestID, e.ErrorText, e.BlockedReason))
		case *log.EventEntryAdded:
			if e.Entry.Level == log.LevelError {
				page.Errors = append(page.Errors, fmt.Sprintf("%s: %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL))
			}
		case *runtime.EventExceptionThrown:
			page.Errors = append(page.Errors, "exception: "+e.ExceptionDetails.Error())
		}
	})
	headers := network.Headers{}
	for k, v := range opts.Headers {
		headers[k] = v
	}
	err := chromedp.Run(ctx,
		network.Enable(),
		log.Enable(),
		runtime.Enable(),
		network.SetExtraHTTPHeaders(headers),
		chromedp.Navigate(url),
		chromedp.WaitVisible(opts.Ready, chromedp.ByQuery),
		chromedp.OuterHTML("html", &page.HTML, chromedp.ByQuery),
		chromedp.CaptureScreenshot(&page.Screenshot),
	)
	if err != nil {
		var html string
		_ = chromedp.Run(ctx, chromedp.OuterHTML("html", &html, chromedp.ByQuery))
		t.Fatalf("browser: render %s waiting for %q: %v\nfailed requests: %v\npage: %.2000s", url, opts.Ready, err, page.Failed, html)
	}
	if dir := os.Getenv("TESSERA_SCREENSHOTS"); dir != "" {
		name := fmt.Sprintf("%s/%s.png", dir, sanitize(t.Name()))
		if err := os.WriteFile(name, page.Screenshot, 0o644); err != nil {
			t.Fatalf("browser: save screenshot: %v", err)
		}
	}
	return page
}

// profileDir returns a new profile directory for one browser, removed when the test ends.
// Chromium's helper processes may still write to it for a moment after the browser exits
// (t.TempDir's removal then fails the test), so removal is retried for a few seconds.
func profileDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tessera-browser-")
	if err != nil {
		t.Fatalf("browser: profile directory: %v", err)
	}
	t.Cleanup(func() {
		for range 50 {
			if err = os.RemoveAll(dir); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("browser: remove profile directory: %v", err)
	})
	return dir
}

// sanitize turns a test name into a file name.
func sanitize(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}
