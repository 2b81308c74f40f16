-- wrk script for sign-ins: `POST /auth` with the JSON credentials of seeded users (all correct),
-- rotating over a file of `username password` lines (the password is the rest of the line).
--
--   wrk -t1 -c8 -d10s --latency -s bench/signin.lua http://127.0.0.1:PORT/auth -- CREDENTIALS_FILE
--
-- done() prints one machine-readable line: `BENCH requests=… duration_us=… non2xx=… p50_us=… …`.
-- non2xx counts every answer that is not 2xx or 3xx (503 when the hashing queue is full).

package.path = (debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./") .. "?.lua;" .. package.path
local common = require("common")

local function json_string(s)
   return '"' .. s:gsub('[%c"\\]', function(c)
      return string.format("\\u%04x", c:byte())
   end) .. '"'
end

function init(args)
   local requests = {}
   for line in io.lines(args[1]) do
      local name, password = line:match("^(%S+) (.+)$")
      if name then
         local body = '{"username":' .. json_string(name) .. ',"password":' .. json_string(password) .. '}'
         requests[#requests + 1] = wrk.format("POST", "/auth", { ["Content-Type"] = "application/json" }, body)
      end
   end
   if #requests == 0 then
      error("no credentials in " .. tostring(args[1]))
   end
   request = common.round_robin(requests)
end

done = common.done
