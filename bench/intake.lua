-- wrk script for bench/intake.py: POSTs one signed orders/create body with a unique X-Shopify-Event-Id per
-- request, stops sending after BENCH_WINDOW seconds (so that nothing is in flight when wrk itself stops and
-- every stored row can be matched to a 2xx wrk saw), and prints its own tally as one JSON line.
--
-- Configuration comes from the environment (bench/intake.py sets it):
--   BENCH_BODY_FILE  raw body to send            BENCH_HMAC    base64 HMAC-SHA256 of that body
--   BENCH_SHOP       X-Shopify-Shop-Domain       BENCH_TOPIC   X-Shopify-Topic
--   BENCH_PREFIX     event id prefix (unique per run)
--   BENCH_WINDOW     seconds each thread keeps sending; wrk's -d must be a little longer (the drain)

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

-- main Lua state: one entry per thread, read back in done()
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

-- per-thread state
local path, headers, body, prefix, window
local deadline = nil
local n = 0

sent, ok2xx, other, first_at, last_at, statuses = 0, 0, 0, 0, 0, ""
local by_status = {}

function init(args)
  local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
  body = f:read("*a")
  f:close()
  window = tonumber(os.getenv("BENCH_WINDOW"))
  prefix = os.getenv("BENCH_PREFIX") .. "-t" .. tostring(id) .. "-"
  path = "/webhooks/shopify"
  headers = {
    ["Content-Type"] = "application/json",
    ["X-Shopify-Topic"] = os.getenv("BENCH_TOPIC"),
    ["X-Shopify-Shop-Domain"] = os.getenv("BENCH_SHOP"),
    ["X-Shopify-Hmac-Sha256"] = os.getenv("BENCH_HMAC"),
    ["X-Shopify-API-Version"] = "2025-01",
  }
end

function delay()
  if deadline ~= nil and now() >= deadline then
    return 3600000 -- the window is over: send nothing more; wrk ends the run after the drain
  end
  return 0
end

function request()
  if deadline == nil then
    first_at = now()
    deadline = first_at + window
  end
  n = n + 1
  sent = n
  headers["X-Shopify-Event-Id"] = prefix .. tostring(n)
  headers["X-Shopify-Webhook-Id"] = prefix .. tostring(n)
  return wrk.format("POST", path, headers, body)
end

function response(status, hdrs, resp_body)
  if status >= 200 and status < 300 then
    ok2xx = ok2xx + 1
  else
    other = other + 1
    by_status[status] = (by_status[status] or 0) + 1
    local parts = {}
    for code, count in pairs(by_status) do
      table.insert(parts, tostring(code) .. ":" .. tostring(count))
    end
    statuses = table.concat(parts, ",")
  end
  last_at = now()
end

function done(summary, latency, requests)
  local t_sent, t_ok, t_other, first, last, codes = 0, 0, 0, nil, 0, {}
  for _, thread in ipairs(threads) do
    t_sent = t_sent + thread:get("sent")
    t_ok = t_ok + thread:get("ok2xx")
    t_other = t_other + thread:get("other")
    local f, l = thread:get("first_at"), thread:get("last_at")
    if f > 0 and (first == nil or f < first) then first = f end
    if l > last then last = l end
    local s = thread:get("statuses")
    if s ~= "" then table.insert(codes, s) end
  end
  -- latency quantiles (microseconds), so that bench/intake.py can merge several runs into one distribution
  local qs = {}
  local function q(p) table.insert(qs, string.format('["%g",%d]', p, latency:percentile(p))) end
  for p = 1, 99 do q(p) end
  for p = 99.1, 99.95, 0.1 do q(p) end
  q(99.95); q(99.99)
  t_sent = t_sent - 1 -- wrk calls request() once on the first thread to check the script; that one is not sent
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"sent":%d,"ok2xx":%d,"non2xx":%d,"statuses":"%s","completed":%d,"duration_us":%d,' ..
    '"active_s":%.6f,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,"quantiles":[%s]}}\n',
    t_sent, t_ok, t_other, table.concat(codes, ";"), summary.requests, summary.duration,
    (first and last > first) and (last - first) or 0,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max, table.concat(qs, ",")))
end
