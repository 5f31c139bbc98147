-- hook: admit
-- cocod's default admission policy (docs/policy.md, "admit").
--
-- admit(pod, request) sees the pod as the API is about to store it (defaults
-- applied, validated) and request = {operation = "CREATE" | "UPDATE",
-- namespace = "...", user = "...", dry_run = bool}.  It decides:
--   1. UPDATE is allowed unchanged: only labels and annotations can change
--      after creation, and they are not policed here.
--   2. A container (init or regular) that adds a capability reaching into
--      the guest kernel is denied: ALL, SYS_ADMIN, SYS_MODULE, SYS_RAWIO,
--      SYS_PTRACE, SYS_BOOT, BPF, PERFMON.  Inside a confidential VM these
--      would let one container read what the KBS released to the pod.
--      (privileged, hostNetwork, hostPID, hostIPC are refused earlier, by
--      pod validation.)
--   3. A container without a cpu limit gets one of 1 cpu, and without a
--      memory limit one of 512Mi, or its request when that is larger: the
--      limits size the guest VM, so every pod gets a predictable size.
-- It adds no labels: a label the user did not write would make every
-- `apply` of the same manifest look like a change.  The decision log
-- records which policy version admitted each pod.
-- The decision is {allow = true, reason = ..., pod = <mutated pod>} or
-- {allow = false, reason = ...}.

local DEFAULT_LIMITS = { cpu = "1", memory = "512Mi" }
local DANGEROUS = {
  ALL = true, SYS_ADMIN = true, SYS_MODULE = true, SYS_RAWIO = true,
  SYS_PTRACE = true, SYS_BOOT = true, BPF = true, PERFMON = true,
}

local function is_table(v) return type(v) == "table" end

-- "cap_sys_admin" -> "SYS_ADMIN"
local function cap_name(c)
  c = string.upper(c)
  if c:sub(1, 4) == "CAP_" then c = c:sub(5) end
  return c
end

-- The first dangerous capability a container adds, or nil.
local function dangerous_cap(c)
  local sc = c.securityContext
  local caps = is_table(sc) and sc.capabilities
  if not is_table(caps) or not is_table(caps.add) then return nil end
  for _, cap in ipairs(caps.add) do
    if type(cap) == "string" and DANGEROUS[cap_name(cap)] then return cap end
  end
  return nil
end

-- Sets resources.limits[name] when absent; returns true when it did.
local function default_limit(c, name)
  if not is_table(c.resources) then c.resources = {} end
  local res = c.resources
  if not is_table(res.limits) then res.limits = {} end
  if res.limits[name] ~= nil and res.limits[name] ~= cocod.null then return false end
  local want = DEFAULT_LIMITS[name]
  local req = is_table(res.requests) and res.requests[name] or nil
  if req ~= nil and req ~= cocod.null then
    local r, d = cocod.quantity(req), cocod.quantity(want)
    if r and r > d then want = req end
  end
  res.limits[name] = want
  return true
end

local function each_container(spec, fn)
  for _, list in ipairs({ "initContainers", "containers" }) do
    if is_table(spec[list]) then
      for i, c in ipairs(spec[list]) do
        if is_table(c) then
          local r = fn(c, list, i)
          if r then return r end
        end
      end
    end
  end
  return nil
end

function admit(pod, request)
  if is_table(request) and request.operation == "UPDATE" then
    return { allow = true, reason = "updates change only labels and annotations" }
  end
  if not is_table(pod) or not is_table(pod.spec) then
    return { allow = false, reason = "the pod has no spec" }
  end
  local denied = each_container(pod.spec, function(c, list, i)
    local cap = dangerous_cap(c)
    if cap then
      return string.format("%s[%d] (%s) adds capability %s, which reaches into the guest kernel",
                           list, i - 1, tostring(c.name), cap)
    end
  end)
  if denied then return { allow = false, reason = denied } end

  local defaulted = {}
  each_container(pod.spec, function(c)
    local cpu = default_limit(c, "cpu")
    local mem = default_limit(c, "memory")
    if cpu or mem then defaulted[#defaulted + 1] = tostring(c.name) end
  end)
  local reason = "admitted"
  if #defaulted > 0 then
    reason = "admitted; default limits set on " .. table.concat(defaulted, ", ")
  end
  return { allow = true, reason = reason, pod = pod }
end

local CREATE = { operation = "CREATE", namespace = "default", user = "admin", dry_run = false }

local function pod_with(containers, init)
  return {
    apiVersion = "v1", kind = "Pod",
    metadata = { name = "web", namespace = "default", labels = { app = "web" } },
    spec = { runtimeClassName = "cocod-snp", containers = containers, initContainers = init },
  }
end

tests = {
  { name = "a plain pod gets default limits and keeps its labels",
    input = { pod_with({ { name = "app", image = "nginx:1.25" } }), CREATE },
    expect = { allow = true, reason = "default limits set on app",
               pod = { metadata = { labels = { app = "web" } },
                       spec = { containers = { { resources = { limits = { cpu = "1", memory = "512Mi" } } } } } } } },
  { name = "a request larger than the default becomes the limit",
    input = { pod_with({ { name = "db", image = "postgres:16",
                           resources = { requests = { memory = "2Gi", cpu = "500m" } } } }), CREATE },
    expect = { allow = true,
               pod = { spec = { containers = { { resources = { limits = { cpu = "1", memory = "2Gi" },
                                                               requests = { memory = "2Gi", cpu = "500m" } } } } } } } },
  { name = "explicit limits are kept",
    input = { pod_with({ { name = "app", image = "nginx",
                           resources = { limits = { cpu = "250m", memory = "64Mi" } } } }), CREATE },
    expect = { allow = true, reason = "admitted",
               pod = { spec = { containers = { { resources = { limits = { cpu = "250m", memory = "64Mi" } } } } } } } },
  { name = "init containers are defaulted too",
    input = { pod_with({ { name = "app", image = "nginx", resources = { limits = { cpu = "2", memory = "1Gi" } } } },
                       { { name = "setup", image = "busybox" } }), CREATE },
    expect = { allow = true, reason = "default limits set on setup",
               pod = { spec = { initContainers = { { resources = { limits = { cpu = "1", memory = "512Mi" } } } } } } } },
  { name = "SYS_ADMIN is denied",
    input = { pod_with({ { name = "app", image = "nginx",
                           securityContext = { capabilities = { add = { "NET_BIND_SERVICE", "SYS_ADMIN" } } } } }), CREATE },
    expect = { allow = false, reason = "containers[0] (app) adds capability SYS_ADMIN" } },
  { name = "CAP_ prefixed, lower-case names are recognised in init containers",
    input = { pod_with({ { name = "app", image = "nginx" } },
                       { { name = "dbg", image = "busybox",
                           securityContext = { capabilities = { add = { "cap_sys_ptrace" } } } } }), CREATE },
    expect = { allow = false, reason = "initContainers[0] (dbg) adds capability cap_sys_ptrace" } },
  { name = "harmless capabilities are allowed",
    input = { pod_with({ { name = "app", image = "nginx",
                           securityContext = { capabilities = { add = { "NET_BIND_SERVICE" }, drop = { "ALL" } } } } }), CREATE },
    expect = { allow = true } },
  { name = "updates are allowed without changes",
    input = { pod_with({ { name = "app", image = "nginx" } }), { operation = "UPDATE" } },
    expect = { allow = true, reason = "updates change only labels" } },
  { name = "a pod without a spec is denied",
    input = { { metadata = { name = "x" } }, CREATE },
    expect = { allow = false, reason = "no spec" } },
}
