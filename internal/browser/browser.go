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
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
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
	// SignIns lists the URLs whose HTTP authentication challenge (401 with
	// WWW-Authenticate) Options.SignIn answered: the prompts a person would have seen.
	SignIns []string
	// Errors lists what the browser reported as errors while drawing the page (a request a
	// Content-Security-Policy refused, an inline style it blocked, a script error): a page
	// that needs more than its policy allows shows it here.
	Errors []string
}

// Credentials are a user name and password.
type Credentials struct {
	User, Password string
}

// Options say how to open a page.
type Options struct {
	// Headers are sent with every request the page makes (for example Authorization).
	Headers map[string]string
	// Ready is a CSS selector the page must show before it counts as drawn.
	Ready string
	// Timeout bounds the whole render. Default 60 seconds.
	Timeout time.Duration
	// SignIn, when set, answers every HTTP authentication challenge the page meets, as a
	// person does in the browser's sign-in prompt; the browser then keeps the credentials
	// for the page's later requests as usual.
	SignIn *Credentials
}

// Render opens url in a fresh headless Chromium, waits for opts.Ready to be visible and
// returns the page. The test fails when Chromium is missing or the page never shows
// opts.Ready. Each browser has its own profile in a directory chromedp makes and removes
// once the browser has exited (a test's TempDir would be removed while the browser's last
// processes may still write to it, failing the test).
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
	var mu sync.Mutex // guards failed, signIns and errs, which the listener fills
	var failed, signIns, errs []string
	collected := func() ([]string, []string, []string) {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(failed), slices.Clone(signIns), slices.Clone(errs)
	}
	chromedp.ListenTarget(ctx, func(ev any) {
		switch e := ev.(type) {
		case *network.EventLoadingFailed:
			mu.Lock()
			failed = append(failed, fmt.Sprintf("%s: %s %s", e.RequestID, e.ErrorText, e.BlockedReason))
			mu.Unlock()
		case *log.EventEntryAdded:
			if e.Entry.Level == log.LevelError {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("%s: %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL))
				mu.Unlock()
			}
		case *runtime.EventExceptionThrown:
			mu.Lock()
			errs = append(errs, "exception: "+e.ExceptionDetails.Error())
			mu.Unlock()
		case *fetch.EventRequestPaused: // only with SignIn: let every request go on
			go answer(ctx, fetch.ContinueRequest(e.RequestID))
		case *fetch.EventAuthRequired:
			mu.Lock()
			signIns = append(signIns, e.Request.URL)
			mu.Unlock()
			go answer(ctx, fetch.ContinueWithAuth(e.RequestID, &fetch.AuthChallengeResponse{
				Response: fetch.AuthChallengeResponseResponseProvideCredentials,
				Username: opts.SignIn.User, Password: opts.SignIn.Password,
			}))
		}
	})
	headers := network.Headers{}
	for k, v := range opts.Headers {
		headers[k] = v
	}
	actions := []chromedp.Action{network.Enable(), log.Enable(), runtime.Enable(), network.SetExtraHTTPHeaders(headers)}
	if opts.SignIn != nil {
		actions = append(actions, fetch.Enable().WithHandleAuthRequests(true))
	}
	err := chromedp.Run(ctx, append(actions,
		chromedp.Navigate(url),
		chromedp.WaitVisible(opts.Ready, chromedp.ByQuery),
		chromedp.OuterHTML("html", &page.HTML, chromedp.ByQuery),
		chromedp.CaptureScreenshot(&page.Screenshot),
	)...)
	page.Failed, page.SignIns, page.Errors = collected()
	if err != nil {
		var html string
		_ = chromedp.Run(ctx, chromedp.OuterHTML("html", &html, chromedp.ByQuery))
		t.Fatalf("browser: render %s waiting for %q: %v\nfailed requests: %v\nerrors: %v\npage: %.2000s", url, opts.Ready, err, page.Failed, page.Errors, html)
	}
	if dir := os.Getenv("TESSERA_SCREENSHOTS"); dir != "" {
		name := fmt.Sprintf("%s/%s.png", dir, sanitize(t.Name()))
		if err := os.WriteFile(name, page.Screenshot, 0o644); err != nil {
			t.Fatalf("browser: save screenshot: %v", err)
		}
	}
	return page
}

// answer runs a Fetch command for a paused request; it is sent from its own goroutine,
// since the event listener must not block. A failure shows as the page not getting ready.
func answer(ctx context.Context, action chromedp.Action) {
	c := chromedp.FromContext(ctx)
	_ = action.Do(cdp.WithExecutor(ctx, c.Target))
}

// sanitize turns a test name into a file name.
func sanitize(name string) string {
	b := []byte(name)
	for i, c := range b {
		if safe := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'; !safe {
			b[i] = '_'
		}
	}
	return string(b)
}
