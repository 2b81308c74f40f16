-- wrk script for join tickets (issue 14), both halves, used by bench/game.sh:
--
--   wrk -t1 -c64 -d10s --latency -s bench/tickets.lua http://127.0.0.1:PORT -- ask KEYS_FILE OUT_FILE
--   wrk -t1 -c64 -d60s --latency -s bench/tickets.lua http://127.0.0.1:PORT -- redeem TICKETS_FILE SERVICE_KEY_FILE [FIFO]
--
-- ask:    `POST /auth/tickets` (no body) with `Authorization: Bearer <key>`, rotating over every
--         player key of KEYS_FILE (one standard base64 key a line), as bench/validate.lua does;
--         every ticket answered 200 is appended to OUT_FILE, one a line.
-- redeem: `POST /auth/tickets/redeem` with the service key of SERVICE_KEY_FILE and the body
--         `{"ticket": "…"}`, each ticket of TICKETS_FILE exactly once, in file order (a ticket
--         works once); wrk stops when the last one has been sent and, with FIFO, says so on it
--         (the mechanism of bench/validate.lua's `once`: wrk's main thread sleeps for the whole -d
--         unless it gets SIGINT). The requests still in flight at that moment are not counted.
--
-- done() prints one machine-readable line: `BENCH requests=… duration_us=… p50_us=… …`, as
-- bench/validate.lua.

local requests = {}
local count = 0
local next_index = 0
local mode = nil
local fifo = nil
local out = nil

local function lines(path)
   local all = {}
   for line in io.lines(path) do
      if #line > 0 then
         all[#all + 1] = line
      end
   end
   if #all == 0 then
      error("nothing in " .. tostring(path))
   end
   return all
end

function init(args)
   mode = args[1]
   if mode == "ask" then
      for _, key in ipairs(lines(args[2])) do
         count = count + 1
         requests[count] = wrk.format("POST", "/auth/tickets", { ["Authorization"] = "Bearer " .. key })
      end
      out = assert(io.open(args[3], "a"))
      out:setvbuf("line")
      next_index = ((wrk.thread:get("id") or 0) * 7919) % count
   elseif mode == "redeem" then
      local service_key = lines(args[3])[1]
      local headers = {
         ["Authorization"] = "Bearer " .. service_key,
         ["Content-Type"] = "application/json",
      }
      for _, ticket in ipairs(lines(args[2])) do
         count = count + 1
         requests[count] = wrk.format("POST", "/auth/tickets/redeem", headers, '{"ticket": "' .. ticket .. '"}')
      end
      fifo = args[4]
   else
      error("mode must be ask or redeem, not " .. tostring(mode))
   end
end

function setup(thread)
   setup_threads = (setup_threads or 0)
   thread:set("id", setup_threads)
   setup_threads = setup_threads + 1
end

function request()
   next_index = next_index + 1
   if mode == "redeem" then
      if next_index == count then
         -- The last ticket: stop this thread, and wake wrk's main thread.
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

-- Only the asks' answers are read (wrk calls this for every answer of either mode; a redemption's
-- status is counted by wrk itself).
function response(status, headers, body)
   if out and status == 200 then
      local ticket = string.match(body, '"ticket":"([^"]+)"')
      if ticket then
         out:write(ticket, "\n")
      end
   end
end

function done(summary, latency, requests_)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
      summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
