-- hook: agent
-- cocod's default agent policy (docs/policy.md, "agent"), evaluated by the
-- guest agent and shipped in init-data so that its hash is measured.
--
-- agent(request, pod): request = { op = "...", container = "name", ... }
-- where op is one of the agent's operations; pod is the pod spec the guest
-- was started for.  It decides:
--   * lifecycle and read-only operations are allowed: create, start, stop,
--     wait, delete, status, stats, logs;
--   * exec, attach and copy are denied: they would let the host operator
--     into a confidential container;
--   * anything else is denied as unknown.

local ALLOWED = {
  create = true, start = true, stop = true, wait = true, delete = true,
  status = true, stats = true, logs = true,
}
local DENIED = {
  exec = "exec into a confidential container is disabled by the default agent policy",
  attach = "attach to a confidential container is disabled by the default agent policy",
  copy = "copying files into or out of a confidential container is disabled by the default agent policy",
}

function agent(request, pod)
  local op = type(request) == "table" and request.op or nil
  if type(op) ~= "string" then
    return { allow = false, reason = "the request names no operation" }
  end
  if DENIED[op] then return { allow = false, reason = DENIED[op] } end
  if ALLOWED[op] then return { allow = true, reason = op .. " is allowed" } end
  return { allow = false, reason = "unknown agent operation " .. string.format("%q", op) }
end

local POD = { metadata = { name = "web" }, spec = { containers = { { name = "app", image = "nginx" } } } }

tests = {
  { name = "logs are allowed", input = { { op = "logs", container = "app" }, POD }, expect = { allow = true } },
  { name = "create and start are allowed", input = { { op = "start", container = "app" }, POD }, expect = { allow = true } },
  { name = "exec is denied", input = { { op = "exec", container = "app", command = { "sh" } }, POD },
    expect = { allow = false, reason = "exec into a confidential container is disabled" } },
  { name = "attach is denied", input = { { op = "attach", container = "app" }, POD }, expect = { allow = false } },
  { name = "unknown operations are denied", input = { { op = "debug" }, POD },
    expect = { allow = false, reason = "unknown agent operation" } },
  { name = "a request without op is denied", input = { { container = "app" }, POD },
    expect = { allow = false, reason = "names no operation" } },
}
