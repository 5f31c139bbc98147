-- hook: release
-- cocod's default resource policy (docs/policy.md, "release").
--
-- release(resource_path, token_claims): may the KBS hand the resource at
-- resource_path ("repo/type/tag") to the guest that presented this
-- attestation token?  token_claims are the verified token's claims:
--   { ["ear.status"] = "affirming" | "warning" | "contraindicated" | "none",
--     ["ear.trustworthiness-vector"] = {...}, tee = "snp" | "tdx" | "sim",
--     sim = bool, dev_mode = bool, ... }
-- (or EAR's submods = { name = { ["ear.status"] = ... } }, worst one wins).
-- dev_mode is set by the KBS from the daemon's configuration, not by the
-- guest.  It decides:
--   1. a malformed path (empty, absolute, with "..") is denied;
--   2. affirming: released;
--   3. warning from simulated evidence (sim = true or tee = "sim"):
--      released only when dev_mode is true;
--   4. anything else is denied, naming the status.

local RANK = { affirming = 1, warning = 2, none = 3, contraindicated = 4 }

-- The token's status: the top-level one, or the worst of the submods.
local function status_of(tc)
  if type(tc["ear.status"]) == "string" then return tc["ear.status"] end
  local worst
  if type(tc.submods) == "table" then
    for _, sub in pairs(tc.submods) do
      local s = type(sub) == "table" and sub["ear.status"]
      if type(s) ~= "string" or not RANK[s] then return "none" end
      if not worst or RANK[s] > RANK[worst] then worst = s end
    end
  end
  return worst or "none"
end

local function deny(reason) return { allow = false, reason = reason } end

function release(path, tc)
  if type(path) ~= "string" or path == "" or path:sub(1, 1) == "/"
      or path:find("..", 1, true) then
    return deny("malformed resource path " .. string.format("%q", tostring(path)))
  end
  if type(tc) ~= "table" then return deny("no attestation token") end
  local status = status_of(tc)
  local sim = tc.sim == true or tc.tee == "sim"
  if status == "affirming" and not sim then
    return { allow = true, reason = "attestation status is affirming" }
  end
  if sim and (status == "warning" or status == "affirming") then
    if tc.dev_mode == true then
      return { allow = true, reason = "simulated TEE released in dev mode" }
    end
    return deny("simulated TEE evidence is trusted only when the daemon runs in dev mode")
  end
  return deny("attestation status is " .. status .. "; resources are released only to affirming TEEs")
end

tests = {
  { name = "affirming SNP guest gets the resource",
    input = { "default/key/app", { ["ear.status"] = "affirming", tee = "snp", sim = false } },
    expect = { allow = true } },
  { name = "warning from a real TEE is denied",
    input = { "default/key/app", { ["ear.status"] = "warning", tee = "snp", dev_mode = true } },
    expect = { allow = false, reason = "attestation status is warning" } },
  { name = "contraindicated is denied",
    input = { "default/key/app", { ["ear.status"] = "contraindicated", tee = "tdx" } },
    expect = { allow = false, reason = "contraindicated" } },
  { name = "sim token in dev mode is released",
    input = { "default/key/app", { ["ear.status"] = "warning", tee = "sim", sim = true, dev_mode = true } },
    expect = { allow = true, reason = "dev mode" } },
  { name = "sim token outside dev mode is denied",
    input = { "default/key/app", { ["ear.status"] = "warning", tee = "sim", sim = true, dev_mode = false } },
    expect = { allow = false, reason = "only when the daemon runs in dev mode" } },
  { name = "a sim token claiming affirming is still only a sim token",
    input = { "default/key/app", { ["ear.status"] = "affirming", sim = true } },
    expect = { allow = false, reason = "dev mode" } },
  { name = "submods: the worst status decides",
    input = { "default/key/app", { submods = { cpu0 = { ["ear.status"] = "affirming" },
                                                gpu0 = { ["ear.status"] = "warning" } } } },
    expect = { allow = false, reason = "status is warning" } },
  { name = "submods all affirming",
    input = { "default/key/app", { submods = { cpu0 = { ["ear.status"] = "affirming" } } } },
    expect = { allow = true } },
  { name = "a token without a status is denied",
    input = { "default/key/app", { tee = "snp" } },
    expect = { allow = false, reason = "status is none" } },
  { name = "path traversal is denied",
    input = { "default/../../etc/shadow", { ["ear.status"] = "affirming" } },
    expect = { allow = false, reason = "malformed resource path" } },
}
