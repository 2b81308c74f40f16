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

package.path = (debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./") .. "?.lua;" .. package.path
local common = require("common")

local out = nil

function init(args)
   local mode = args[1]
   local requests = {}
   if mode == "ask" then
      for i, key in ipairs(common.lines(args[2], "nothing")) do
         requests[i] = wrk.format("POST", "/auth/tickets", { ["Authorization"] = "Bearer " .. key })
      end
      out = assert(io.open(args[3], "a"))
      out:setvbuf("line")
      request = common.round_robin(requests, common.thread_start(#requests))
   elseif mode == "redeem" then
      local service_key = common.lines(args[3], "nothing")[1]
      local headers = {
         ["Authorization"] = "Bearer " .. service_key,
         ["Content-Type"] = "application/json",
      }
      for i, ticket in ipairs(common.lines(args[2], "nothing")) do
         requests[i] = wrk.format("POST", "/auth/tickets/redeem", headers, '{"ticket": "' .. ticket .. '"}')
      end
      -- Each ticket once (a ticket works once); at the last, stop and wake wrk's main thread.
      request = common.each_once(requests, args[4])
   else
      error("mode must be ask or redeem, not " .. tostring(mode))
   end
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

setup = common.setup
done = common.done
