-- wrk script for bench/scaleout/run.py: runs the wrk script named by BENCH_BASE_SCRIPT (its
-- request/response/done functions), then prints the latency distribution as
-- "quantile <percent> <microseconds>" lines, so that run.py can merge the distributions of two
-- wrk instances run side by side (one per API process) into one p50/p99.
dofile(os.getenv("BENCH_BASE_SCRIPT"))

local base_done = done
local grid = {}
for i = 1, 198 do
  grid[#grid + 1] = i * 0.5 -- 0.5 .. 99.0
end
for i = 1, 9 do
  grid[#grid + 1] = 99 + i * 0.1 -- 99.1 .. 99.9
end
grid[#grid + 1] = 99.95
grid[#grid + 1] = 99.99
grid[#grid + 1] = 100

function done(summary, latency, requests)
  if base_done then
    base_done(summary, latency, requests)
  end
  for _, q in ipairs(grid) do
    io.write(string.format("quantile %g %d\n", q, latency:percentile(q)))
  end
end
