-- wrk script shared by every row of bench/run.py.
--
-- Without arguments each connection repeats wrk's own request (URL plus -H headers).
-- With `-- <requests file> <thread count>` each thread cycles through its own share of the
-- pre-generated requests in the file, one per line: "<Stripe-Signature header>\t<JSON body>".
-- wrk's LuaJIT has no HMAC, so run.py signs the webhook events just before the run and this
-- script only replays them; splitting the lines between threads keeps every event distinct.
--
-- `done` prints one line starting with BENCH_JSON that run.py parses.

local thread_id = 0
local threads = {}

function setup(thread)
   thread:set("id", thread_id)
   thread_id = thread_id + 1
   table.insert(threads, thread)
end

local requests = nil
local next_index = 1
wrapped = 0

function init(args)
   local path, thread_count = args[1], tonumber(args[2] or "1")
   if path == nil then
      return
   end
   requests = {}
   local line_number = 0
   for line in io.lines(path) do
      -- Round-robin by line so each thread owns a disjoint set of events.
      if line_number % thread_count == id then
         local signature, body = line:match("^([^\t]+)\t(.*)$")
         table.insert(requests, wrk.format("POST", nil, {
            ["Content-Type"] = "application/json",
            ["Stripe-Signature"] = signature,
         }, body))
      end
      line_number = line_number + 1
   end
   if #requests == 0 then
      error("no requests for thread " .. id .. " in " .. path)
   end
end

function request()
   if requests == nil then
      return wrk.request()
   end
   if next_index > #requests then
      -- Ran out of distinct events: later ones repeat and are mere duplicates; run.py reports it.
      next_index = 1
      wrapped = wrapped + 1
   end
   local req = requests[next_index]
   next_index = next_index + 1
   return req
end

function done(summary, latency, _)
   local total_wrapped = 0
   for _, thread in ipairs(threads) do
      total_wrapped = total_wrapped + (thread:get("wrapped") or 0)
   end
   local errors = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
         .. '"max_us": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, '
         .. '"timeouts": %d, "http_errors": %d, "wrapped": %d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      latency.max, errors.connect, errors.read, errors.write, errors.timeout, errors.status,
      total_wrapped
   ))
end
