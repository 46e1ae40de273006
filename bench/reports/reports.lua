-- wrk script for bench/reports/run.py: GET requests rotating over the "<path> <token>" lines of
-- the file BENCH_TARGETS (each a report of some user and day, with the token of that user's
-- organization owner). Each thread starts at its own offset. BENCH_MAX_REQUESTS caps responses
-- per thread, so a run is bounded in count as well as in time (-d). Statuses other than 200 are
-- counted and the first three printed to stderr.
local targets = {}
for line in io.lines(os.getenv("BENCH_TARGETS")) do
  local path, token = line:match("^(%S+)%s+(%S+)$")
  if path then
    targets[#targets + 1] = {path, "Bearer " .. token}
  end
end
local cap = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "") or 1000000
local seen, i, failed = 0, 0, 0
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("offset", counter * 7919)
end

function request()
  i = i + 1
  local target = targets[(i + (offset or 0)) % #targets + 1]
  return wrk.format("GET", target[1], {["Authorization"] = target[2]})
end

function response(status, headers, body)
  seen = seen + 1
  if status ~= 200 then
    failed = failed + 1
    if failed <= 3 then
      io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n")
    end
  end
  if seen >= cap then
    wrk.thread:stop()
  end
end
