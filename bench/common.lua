-- The parts the wrk scripts of bench/ share (validate.lua, tickets.lua, signin.lua, writes.lua).
-- wrk gives a script no path of its own: each finds this module beside itself with
--
--   package.path = (debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./") .. "?.lua;" .. package.path
--   local common = require("common")
--
-- wrk runs a script in several Lua states (one that calls setup() and done(), one per thread
-- that calls init(), request(), response()): each requires its own copy of this module.

local M = {}

-- lines(path, what): the non-empty lines of the file PATH; an error "WHAT in PATH" when there
-- are none.
function M.lines(path, what)
   local all = {}
   for line in io.lines(path) do
      if #line > 0 then
         all[#all + 1] = line
      end
   end
   if #all == 0 then
      error(what .. " in " .. tostring(path), 2)
   end
   return all
end

-- setup(thread): wrk's setup(), numbering the threads 0, 1, … (thread:get("id") in init()).
local threads = 0
function M.setup(thread)
   thread:set("id", threads)
   threads = threads + 1
end

-- thread_start(count): where this thread starts in a list of COUNT (from setup()'s number,
-- spread by a prime; with -t1, at its beginning).
function M.thread_start(count)
   return ((wrk.thread:get("id") or 0) * 7919) % count
end

-- round_robin(requests, start): a request() walking REQUESTS in a circle, from the one after
-- index START (0: from the first).
function M.round_robin(requests, start)
   local count, i = #requests, start or 0
   return function()
      i = i % count + 1
      return requests[i]
   end
end

-- each_once(requests, fifo): a request() sending each of REQUESTS once, in order. At the last
-- one it stops the thread, writes a line to the file FIFO (if given: bench/lib.sh's wrk_measure
-- waits on it) and sends wrk a SIGINT: its main thread otherwise sleeps for the whole -d, and
-- prints its summary at once on SIGINT. The requests still in flight then are not counted.
function M.each_once(requests, fifo)
   local count, i = #requests, 0
   return function()
      i = i + 1
      if i == count then
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
      elseif i > count then
         i = count
      end
      return requests[i]
   end
end

-- done(summary, latency): wrk's done(), printing one machine-readable line that bench/lib.sh's
-- wrk_measure reads: `BENCH requests=… duration_us=… non2xx=… connect_errors=… read_errors=…
-- write_errors=… timeouts=… p50_us=… p90_us=… p99_us=… max_us=…`.
function M.done(summary, latency)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
      summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end

return M
