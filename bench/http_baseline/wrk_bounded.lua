-- wrk script for bench/http_baseline/run.py.
-- BENCH_TOKEN: sent as "Authorization: Bearer <token>" when set and not empty.
-- BENCH_MAX_REQUESTS: per-thread cap on responses; a thread that reaches it stops, so a run is
-- bounded in count as well as in time (-d). run.py sets the cap far above what the run can do
-- in its duration and refuses the result if a thread hits it (the req/s would be wrong).
local token = os.getenv("BENCH_TOKEN") or ""
if token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

local cap = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "") or 1000000
local seen = 0

function response(status, headers, body)
  seen = seen + 1
  if seen >= cap then
    wrk.thread:stop()
  end
end
