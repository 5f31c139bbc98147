-- hook: appraise
-- cocod's default attestation policy (docs/policy.md, "appraise"), in the
-- manner of Trustee's default: evidence claims compared with reference
-- values, summarised as an AR4SI trustworthiness vector.
--
-- appraise(claims, reference_values), claims as the KBS verifier produces
-- them after checking the evidence's signature and nonce:
--   { tee = "snp" | "tdx" | "sim" | "sample", sim = bool,
--     measurement = hex, host_data = hex (SNP) / init_data = hex (TDX),
--     report_data = hex,
--     policy = { debug = bool, migrate_ma = bool, smt = bool },
--     tcb_status = "UpToDate" | "OutOfDate" | "SWHardeningNeeded" |
--                  "ConfigurationNeeded" | "Revoked" | "unknown",
--     tcb = { bootloader = n, tee = n, snp = n, microcode = n } }
-- reference_values (every list optional; hex compared case-insensitively):
--   { measurement = { hex, ... }, host_data = { hex, ... },
--     init_data = { hex, ... }, tcb_min = { bootloader = n, ... } }
--
-- Tiers (AR4SI): 0 no claim, 2 affirming, 32 warning, 96 contraindicated.
--   hardware:       snp/tdx, debug off, TCB up to date and not below
--                   tcb_min -> 2; TCB out of date, unknown, or below
--                   tcb_min -> 32; debug on or TCB revoked -> 96;
--                   sim -> 32; sample or unknown TEE -> 96.
--   runtime_opaque: memory encrypted from the host (snp/tdx, debug off) -> 2,
--                   debug -> 96, sim -> 32.
--   executables:    measurement in reference_values.measurement -> 2, not in
--                   it -> 96, no reference measurements -> 32.
--   configuration:  host_data / init_data in the matching reference list
--                   -> 2, not in it -> 96, no reference list -> 0.
--   the rest:       0 (cocod makes no such claim).
-- Simulated evidence is capped at 32 everywhere.  status: contraindicated
-- if any tier is 96, else warning if any is 32, else affirming if any is 2,
-- else none.  allow (issue a token at all) is status affirming or warning;
-- the resource policy decides what each status may receive.

local NONE, AFFIRMING, WARNING, CONTRAINDICATED = 0, 2, 32, 96
local FIELDS = { "instance_identity", "configuration", "executables", "file_system",
                 "hardware", "runtime_opaque", "storage_opaque", "sourced_data" }
local TCB_PARTS = { "bootloader", "tee", "snp", "microcode" }
local TCB_WARN = { OutOfDate = true, SWHardeningNeeded = true, ConfigurationNeeded = true,
                   ConfigurationAndSWHardeningNeeded = true, unknown = true }

local function is_table(v) return type(v) == "table" end

local function listed(list, v)
  if type(v) ~= "string" then return false end
  v = v:lower()
  for _, x in ipairs(list) do
    if type(x) == "string" and x:lower() == v then return true end
  end
  return false
end

local function has_refs(list) return is_table(list) and #list > 0 end

local function hardware(claims, refs, notes)
  local tee = claims.tee
  if claims.sim == true or tee == "sim" then
    notes[#notes + 1] = "simulated TEE: no hardware protection"
    return WARNING, WARNING
  end
  if tee ~= "snp" and tee ~= "tdx" then
    notes[#notes + 1] = "TEE " .. string.format("%q", tostring(tee)) .. " is not trusted"
    return CONTRAINDICATED, CONTRAINDICATED
  end
  local pol = is_table(claims.policy) and claims.policy or {}
  if pol.debug == true then
    notes[#notes + 1] = "debug is enabled: the host can read guest memory"
    return CONTRAINDICATED, CONTRAINDICATED
  end
  local st = claims.tcb_status
  if st == "Revoked" then
    notes[#notes + 1] = "the platform TCB is revoked"
    return CONTRAINDICATED, AFFIRMING
  end
  if st ~= "UpToDate" then
    notes[#notes + 1] = "TCB status is " .. tostring(st)
    return WARNING, AFFIRMING
  end
  if is_table(refs.tcb_min) then
    local tcb = is_table(claims.tcb) and claims.tcb or {}
    for _, part in ipairs(TCB_PARTS) do
      local min = refs.tcb_min[part]
      if type(min) == "number" and (type(tcb[part]) ~= "number" or tcb[part] < min) then
        notes[#notes + 1] = "TCB " .. part .. " is below the minimum " .. min
        return WARNING, AFFIRMING
      end
    end
  end
  return AFFIRMING, AFFIRMING
end

local function executables(claims, refs, notes)
  if not has_refs(refs.measurement) then
    notes[#notes + 1] = "no reference measurement to compare with"
    return WARNING
  end
  if listed(refs.measurement, claims.measurement) then return AFFIRMING end
  notes[#notes + 1] = "measurement " .. tostring(claims.measurement) .. " is not a reference value"
  return CONTRAINDICATED
end

local function configuration(claims, refs, notes)
  local value, list, what = claims.host_data, refs.host_data, "host_data"
  if claims.init_data ~= nil or (refs.host_data == nil and refs.init_data ~= nil) then
    value, list, what = claims.init_data, refs.init_data, "init_data"
  end
  if not has_refs(list) then return NONE end
  if listed(list, value) then return AFFIRMING end
  notes[#notes + 1] = what .. " " .. tostring(value) .. " is not a reference value"
  return CONTRAINDICATED
end

local function status_of(tv)
  local worst = NONE
  for _, f in ipairs(FIELDS) do
    if tv[f] > worst then worst = tv[f] end
  end
  if worst >= CONTRAINDICATED then return "contraindicated" end
  if worst >= WARNING then return "warning" end
  if worst >= AFFIRMING then return "affirming" end
  return "none"
end

function appraise(claims, refs)
  local tv = {}
  for _, f in ipairs(FIELDS) do tv[f] = NONE end
  if not is_table(claims) then
    return { allow = false, reason = "no claims", status = "none", trust_vector = tv }
  end
  if not is_table(refs) then refs = {} end
  if claims.tee == "sample" then
    tv.hardware = CONTRAINDICATED
    return { allow = false, status = "contraindicated", trust_vector = tv,
             reason = "contraindicated: sample TEE evidence proves nothing" }
  end
  local notes = {}
  tv.hardware, tv.runtime_opaque = hardware(claims, refs, notes)
  tv.executables = executables(claims, refs, notes)
  tv.configuration = configuration(claims, refs, notes)
  if claims.sim == true or claims.tee == "sim" then
    for _, f in ipairs(FIELDS) do
      if tv[f] == AFFIRMING then tv[f] = WARNING end
    end
  end
  local status = status_of(tv)
  local reason = status
  if #notes > 0 then reason = status .. ": " .. table.concat(notes, "; ") end
  return { allow = status == "affirming" or status == "warning", reason = reason,
           status = status, trust_vector = tv }
end

local M = "8f6c1bd2c5a3c8e9d0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b"
local H = "aa11bb22cc33dd44ee55ff6600778899aa11bb22cc33dd44ee55ff6600778899"
local REFS = { measurement = { M }, host_data = { H }, tcb_min = { bootloader = 3, tee = 0, snp = 8, microcode = 115 } }
local function snp(over)
  local c = { tee = "snp", sim = false, measurement = M, host_data = H, report_data = "00",
              policy = { debug = false, migrate_ma = false, smt = true },
              tcb_status = "UpToDate", tcb = { bootloader = 3, tee = 0, snp = 8, microcode = 115 } }
  for k, v in pairs(over or {}) do c[k] = v end
  return c
end

tests = {
  { name = "genuine SNP guest with reference values is affirming",
    input = { snp(), REFS },
    expect = { allow = true, status = "affirming",
               trust_vector = { hardware = 2, executables = 2, configuration = 2, runtime_opaque = 2,
                                instance_identity = 0, file_system = 0, storage_opaque = 0, sourced_data = 0 } } },
  { name = "upper-case hex measurements match",
    input = { snp({ measurement = string.upper(M) }), REFS },
    expect = { allow = true, status = "affirming" } },
  { name = "unknown measurement is contraindicated",
    input = { snp({ measurement = string.rep("0", 96) }), REFS },
    expect = { allow = false, status = "contraindicated", trust_vector = { executables = 96 },
               reason = "is not a reference value" } },
  { name = "debug policy is contraindicated",
    input = { snp({ policy = { debug = true } }), REFS },
    expect = { allow = false, status = "contraindicated", trust_vector = { hardware = 96, runtime_opaque = 96 },
               reason = "debug is enabled" } },
  { name = "out-of-date TCB is a warning",
    input = { snp({ tcb_status = "OutOfDate" }), REFS },
    expect = { allow = true, status = "warning", trust_vector = { hardware = 32, executables = 2 } } },
  { name = "TCB below the minimum is a warning",
    input = { snp({ tcb = { bootloader = 3, tee = 0, snp = 7, microcode = 115 } }), REFS },
    expect = { status = "warning", reason = "TCB snp is below the minimum 8" } },
  { name = "wrong host_data is contraindicated",
    input = { snp({ host_data = string.rep("1", 64) }), REFS },
    expect = { allow = false, status = "contraindicated", trust_vector = { configuration = 96 } } },
  { name = "no configuration references: no configuration claim",
    input = { snp(), { measurement = { M } } },
    expect = { allow = true, status = "affirming", trust_vector = { configuration = 0 } } },
  { name = "no reference measurement is a warning",
    input = { snp(), {} },
    expect = { status = "warning", trust_vector = { executables = 32 } } },
  { name = "sim evidence is at most a warning",
    input = { { tee = "sim", sim = true, measurement = M, host_data = H }, REFS },
    expect = { allow = true, status = "warning",
               trust_vector = { hardware = 32, executables = 32, configuration = 32, runtime_opaque = 32 } } },
  { name = "sample TEE is contraindicated",
    input = { { tee = "sample" }, REFS },
    expect = { allow = false, status = "contraindicated", trust_vector = { hardware = 96 } } },
  { name = "TDX init_data is compared with init_data references",
    input = { { tee = "tdx", measurement = M, init_data = H, tcb_status = "UpToDate" },
              { measurement = { M }, init_data = { H } } },
    expect = { allow = true, status = "affirming", trust_vector = { configuration = 2 } } },
  { name = "revoked TCB is contraindicated",
    input = { snp({ tcb_status = "Revoked" }), REFS },
    expect = { allow = false, status = "contraindicated" } },
}
