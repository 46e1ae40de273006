-- wrk script for bench/ingest/run.py: POST /usage/track with one ping per request.
--
-- BENCH_TOKENS: a file of "<access token> <first instant, epoch seconds>" lines, one per
--   device (a login). The lines are dealt out to wrk's threads; each thread cycles over its
--   own devices, so one device's pings come from one thread, in time order, like an agent's.
-- BENCH_RUN: a tag that makes this run's event ids unique.
-- BENCH_STEP: seconds between two pings of one device (a small random jitter is added).
-- BENCH_MAX_REQUESTS: per-thread cap on responses; a thread that reaches it stops, so a run is
--   bounded in count as well as in time (-d). run.py refuses the result if a thread hits it.
-- Every answer other than 202 is counted, and the first three are printed to stderr.
local lines = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do
  local token, first = line:match("^(%S+)%s+(%d+)$")
  if token then
    lines[#lines + 1] = {token, tonumber(first)}
  end
end

local threads = {}
local step = tonumber(os.getenv("BENCH_STEP") or "") or 5
local run = os.getenv("BENCH_RUN") or "run"

function setup(thread)
  thread:set("tid", #threads + 1)
  threads[#threads + 1] = thread
end

local apps = {
  {'"app_name":"Editor"'},
  {'"app_name":"Browser","url":"https://github.com/workpulse/workpulse/pull/4"'},
  {'"app_name":"Browser","url":"https://www.python.org/doc/"'},
  {'"app_name":"Slack","title":"general"'},
  {'"app_name":"Terminal"'},
}
local devices, clocks = {}, {}
local cap = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "") or 1000000
local seen, sent, failed = 0, 0, 0

-- This thread's devices (`tid` is set by setup(); BENCH_THREADS is wrk's -t).
local function mine()
  if #devices == 0 then
    local total = tonumber(os.getenv("BENCH_THREADS") or "") or 1
    for k, entry in ipairs(lines) do
      if (k - 1) % total == (tid - 1) then
        devices[#devices + 1] = entry
        clocks[#devices] = entry[2] + 0.0
      end
    end
  end
end

function request()
  mine()
  sent = sent + 1
  local k = (sent - 1) % #devices + 1
  local at = clocks[k] + step + math.random() * 2 - 1
  clocks[k] = at
  local whole = math.floor(at)
  local stamp = os.date("!%Y-%m-%dT%H:%M:%S", whole)
    .. string.format(".%03d+00:00", math.floor((at - whole) * 1000))
  local body = "{" .. apps[math.random(#apps)][1]
    .. ',"timestamp":"' .. stamp .. '","idle":' .. (math.random() < 0.05 and "true" or "false")
    .. ',"event_id":"' .. run .. "-" .. tid .. "-" .. sent .. '"}'
  return wrk.format("POST", "/usage/track", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. devices[k][1],
  }, body)
end

function response(status, headers, body)
  seen = seen + 1
  if status ~= 202 then
    failed = failed + 1
    if failed <= 3 then
      io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n")
    end
  end
  if seen >= cap then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + (thread:get("failed") or 0)
  end
  io.write("answers other than 202: " .. total .. "\n")
end
