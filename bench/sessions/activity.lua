-- wrk script for bench/sessions/run.py: POST /sessions/{id}/activity, cycling over the
-- sessions listed in BENCH_TARGETS ("<session id> <token>" per line, in a file), each request
-- one second of activity. BENCH_MAX_REQUESTS caps responses per thread (bounded in count too).
-- BENCH_BATCH=N: POST /activity/batch instead, N one-second events on the target's session.
local event = os.getenv("BENCH_EVENT") or '{"activityType":"active","durationSeconds":1}'
local batch = tonumber(os.getenv("BENCH_BATCH") or "")
local targets = {}
for line in io.lines(os.getenv("BENCH_TARGETS")) do
  local id, token = line:match("^(%S+)%s+(%S+)$")
  if id then
    if batch then
      local events = string.rep(event .. ",", batch - 1) .. event
      targets[#targets + 1] = {"/activity/batch", "Bearer " .. token,
        '{"sessionId":"' .. id .. '","events":[' .. events .. ']}'}
    else
      targets[#targets + 1] = {"/sessions/" .. id .. "/activity", "Bearer " .. token, event}
    end
  end
end
local cap = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "") or 1000000
local seen, i = 0, 0
local failed = 0

function setup(thread)
  thread:set("offset", math.random(#targets))
end

function request()
  i = i + 1
  local target = targets[(i + (offset or 0)) % #targets + 1]
  return wrk.format("POST", target[1], {
    ["Content-Type"] = "application/json",
    ["Authorization"] = target[2],
  }, target[3])
end

function response(status, headers, response_body)
  seen = seen + 1
  if status ~= 201 then
    failed = failed + 1
    if failed <= 3 then
      io.stderr:write("unexpected status " .. status .. ": " .. response_body .. "\n")
    end
  end
  if seen >= cap then
    wrk.thread:stop()
  end
end
