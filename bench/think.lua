-- Think time for wrk (bench/run.py --think MS): after each response a connection waits
-- BENCH_THINK_MS milliseconds before its next request, so the load stays below what the
-- proxy can take and the latency measured is the proxy's own, not the queue in front of it.
-- BENCH_PROFILE_SCRIPT, when set, is the profile's own script (headers), loaded first.
local profile = os.getenv("BENCH_PROFILE_SCRIPT")
if profile and profile ~= "" then
  dofile(profile)
end
local think = tonumber(os.getenv("BENCH_THINK_MS"))

function delay()
  return think
end
