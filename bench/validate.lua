-- wrk script: POST /v1/licenses/validate with the licence key in $TESSERA_BENCH_KEY, a
-- fingerprint and an entitlement (the full verdict path). See bench/README.md.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format('{"key":"%s","fingerprint":"bench-machine","entitlement":"export"}', os.getenv("TESSERA_BENCH_KEY"))

function done(summary, latency, requests)
  io.write(string.format("p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  non-2xx %d\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    summary.errors.status))
end
