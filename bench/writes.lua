-- wrk script for the ordinary load of bench/writes.sh: `GET /auth` with `Authorization: Bearer
-- <key>`, walking every key of a file round-robin (one standard base64 key a line), at a steady
-- rate whatever the server's speed:
--
--   BENCH_RATE=3000 wrk -t1 -c32 -d330s --latency -s bench/writes.lua http://127.0.0.1:PORT/auth -- KEYS_FILE
--
-- Each connection waits before each request (wrk's delay()) until the next free slot of a
-- schedule of BENCH_RATE requests a second shared by the thread's connections (per thread: use
-- -t1): a small delay per connection, about connections / BENCH_RATE
-- seconds, so that every key sees the same modest rate (rate / keys a second). The connections
-- must be enough to keep the schedule: connections × 1000 / BENCH_RATE ms must exceed the
-- latency (-c32 at 3,000/s: 10.7 ms). A schedule more than 100 ms behind (a stalled server)
-- restarts from now rather than bursting to catch up, so the achieved rate (the BENCH line's
-- requests / duration) is what to report.
--
-- done() prints one machine-readable line: `BENCH requests=… duration_us=… p50_us=… …`.

package.path = (debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./") .. "?.lua;" .. package.path
local common = require("common")

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } kb_timespec;
int clock_gettime(int clk_id, kb_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("kb_timespec[1]")
local function now_ms()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
   return tonumber(ts[0].tv_sec) * 1000 + tonumber(ts[0].tv_nsec) / 1e6
end

local interval_ms = 0
local next_at = nil

function init(args)
   local requests = {}
   for i, key in ipairs(common.lines(args[1], "no keys")) do
      requests[i] = wrk.format("GET", "/auth", { ["Authorization"] = "Bearer " .. key })
   end
   request = common.round_robin(requests)
   local rate = tonumber(os.getenv("BENCH_RATE") or "")
   if not rate or rate <= 0 then
      error("BENCH_RATE (requests a second) is needed")
   end
   interval_ms = 1000 / rate
end

function delay()
   local now = now_ms()
   if next_at == nil or next_at < now - 100 then
      next_at = now
   end
   next_at = next_at + interval_ms
   local wait = next_at - now
   -- wrk's timers count whole milliseconds and fire on the tick after: round down.
   if wait < 1 then
      return 0
   end
   return math.floor(wait)
end

done = common.done
