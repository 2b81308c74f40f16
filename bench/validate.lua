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
-- sends itself one and writes a line to FIFO, on which bench/run.sh waits to send more.
--
-- done() prints one machine-readable line: `BENCH requests=… duration_us=… p50_us=… …`.

local requests = {}
local count = 0
local next_index = 0
local once = false
local fifo = nil

function init(args)
   local path = args[1]
   once = args[2] == "once"
   fifo = args[3]
   for key in io.lines(path) do
      if #key > 0 then
         count = count + 1
         requests[count] = wrk.format("GET", "/auth", { ["Authorization"] = "Bearer " .. key })
      end
   end
   if count == 0 then
      error("no keys in " .. tostring(path))
   end
   -- Threads start at different places of the list (with -t1, at its beginning).
   next_index = once and 0 or ((wrk.thread:get("id") or 0) * 7919) % count
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

function setup(thread)
   setup_threads = (setup_threads or 0)
   thread:set("id", setup_threads)
   setup_threads = setup_threads + 1
end

function request()
   next_index = next_index + 1
   if once then
      if next_index == count then
         -- The last distinct key: stop this thread, and wake wrk's main thread (which otherwise
         -- sleeps for the whole -d) so that it prints the summary now.
         wrk.thread:stop()
         if fifo then
            local f = io.open(fifo, "w")
            if f then
               f:write("done\n")
               f:close()
            end
         end
         local p = io.popen("kill -INT $PPID")
         if p then p:close() end
      elseif next_index > count then
         next_index = count
      end
      return requests[next_index]
   end
   if next_index > count then
      next_index = 1
   end
   return requests[next_index]
end

function done(summary, latency, requests_)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
      summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
