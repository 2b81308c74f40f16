-- wrk script for key validation: `GET /auth` with `Authorization: Bearer <key>`, rotating over
-- every key of a file (one standard base64 key a line), so that the service's per-key rules see
-- a modest rate per key and its cache sees many distinct keys.
--
--   wrk -t1 -c64 -d10s --latency -s bench/validate.lua http://127.0.0.1:PORT/auth -- KEYS_FILE [once]
--
--   wrk … -- KEYS_FILE once FIFO
--
-- With `once`, each key is sent exactly once, in file order, and wrk stops when the last one has
-- been sent: that measures the first use of every key after a restart (every request a cache
-- miss). The requests still in flight at that moment are not counted. wrk's main thread sleeps
-- for the whole -d unless it gets SIGINT (then it prints its summary at once), so the script
-- sends itself one and writes a line to FIFO, on which bench/lib.sh's wrk_measure waits to send
-- more (bench/common.lua's each_once).
--
-- done() prints one machine-readable line: `BENCH requests=… duration_us=… p50_us=… …`.

package.path = (debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./") .. "?.lua;" .. package.path
local common = require("common")

function init(args)
   local path = args[1]
   local once = args[2] == "once"
   local requests = {}
   for i, key in ipairs(common.lines(path, "no keys")) do
      requests[i] = wrk.format("GET", "/auth", { ["Authorization"] = "Bearer " .. key })
   end
   if once then
      request = common.each_once(requests, args[3])
   else
      -- Threads start at different places of the list (with -t1, at its beginning).
      request = common.round_robin(requests, common.thread_start(#requests))
   end
end

-- BENCH_THINK_MS=N: each connection waits N ms between its answer and its next request, so the
-- offered load is about connections × 1000 / N requests/s whatever the server's speed: a light,
-- steady load whose latency is not queueing behind wrk's own closed loop.
local think_ms = tonumber(os.getenv("BENCH_THINK_MS") or "")
if think_ms and think_ms > 0 then
   function delay()
      return think_ms
   end
end

setup = common.setup
done = common.done
