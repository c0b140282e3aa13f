package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// loopback reports whether addr (host:port) is on a loopback interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil { //lint:swallow an address without a port is simply not a loopback address
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// servePprof serves Go's runtime profiles under /debug/pprof/ on cfg.PprofAddr, when it is
// set, until the returned stop is called; addr is where it listens.
func servePprof(cfg Config, log *slog.Logger) (addr string, stop func(), err error) {
	if cfg.PprofAddr == "" {
		return "", func() {}, nil
	}
	ln, err := net.Listen("tcp", cfg.PprofAddr)
	if err != nil {
		return "", nil, fmt.Errorf("listen on TESSERA_PPROF_ADDR %s: %w", cfg.PprofAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof listener stopped", "error", err)
		}
	}()
	addr = ln.Addr().String()
	log.Info("serving runtime profiles", "url", "http://"+addr+"/debug/pprof/")
	return addr, func() { _ = srv.Close() }, nil // a profile in flight is cut short
}
