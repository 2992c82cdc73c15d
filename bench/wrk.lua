-- wrk script for bench/load.sh.
--
-- BENCH_BODY_BYTES > 0 turns every request into a POST with a body of that
-- many bytes (Content-Type application/octet-stream); otherwise plain GETs.
-- BENCH_PACE_MS > 0 makes each connection wait that long after a response
-- before sending its next request, so every target gets about the same offered load
-- (connections / (pace + latency)) instead of as much as it can take.
-- At the end one machine-readable line is printed:
--   RESULT <requests> <seconds> <req/s> <p50 ms> <p99 ms> <connect+read+write+timeout errors> <non-2xx/3xx>

local body_bytes = tonumber(os.getenv("BENCH_BODY_BYTES") or "0") or 0
if body_bytes > 0 then
  wrk.method = "POST"
  wrk.body = string.rep("x", body_bytes)
  wrk.headers["Content-Type"] = "application/octet-stream"
end

local pace_ms = tonumber(os.getenv("BENCH_PACE_MS") or "0") or 0
if pace_ms > 0 then
  delay = function()
    return pace_ms
  end
end

done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format("RESULT %d %.3f %.1f %.3f %.3f %d %d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout, e.status))
end
