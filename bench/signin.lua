-- wrk script for sign-ins: `POST /auth` with the JSON credentials of seeded users (all correct),
-- rotating over a file of `username password` lines (the password is the rest of the line).
--
--   wrk -t1 -c8 -d10s --latency -s bench/signin.lua http://127.0.0.1:PORT/auth -- CREDENTIALS_FILE
--
-- done() prints one machine-readable line: `BENCH requests=… duration_us=… non2xx=… p50_us=… …`.
-- non2xx counts every answer that is not 2xx or 3xx (503 when the hashing queue is full).

local requests = {}
local count = 0
local next_index = 0

local function json_string(s)
   return '"' .. s:gsub('[%c"\\]', function(c)
      return string.format("\\u%04x", c:byte())
   end) .. '"'
end

function init(args)
   for line in io.lines(args[1]) do
      local name, password = line:match("^(%S+) (.+)$")
      if name then
         count = count + 1
         local body = '{"username":' .. json_string(name) .. ',"password":' .. json_string(password) .. '}'
         requests[count] = wrk.format("POST", "/auth", { ["Content-Type"] = "application/json" }, body)
      end
   end
   if count == 0 then
      error("no credentials in " .. tostring(args[1]))
   end
end

function request()
   next_index = next_index % count + 1
   return requests[next_index]
end

function done(summary, latency, requests_)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
      summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
