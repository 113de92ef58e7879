-- Argo CD health of an e2b.dev E2BDeployment, from the status the e2b-operator writes.
local hs = {}

local function condition(name)
  for _, c in ipairs(obj.status.conditions or {}) do
    -- A condition written for an older generation says nothing about this one.
    if c.type == name and (c.observedGeneration == nil or c.observedGeneration == obj.metadata.generation) then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

local function text(c)
  if c == nil then
    return ""
  end
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return c.reason or ""
end

local function verdict(status, message)
  hs.status = status
  hs.message = message
  return hs
end

-- The API server reads a new object's status as {observedGeneration: 0} until the operator writes.
if obj.status == nil or obj.status.observedGeneration ~= obj.metadata.generation then
  return verdict("Progressing", "Waiting for the e2b-operator to observe generation " .. tostring(obj.metadata.generation))
end

local ready = condition("Ready")
local phase = obj.status.phase
-- Stalled: waits for the user (missing template, failed build, no progress); Degraded: an
-- unhealthy sandbox being replaced or E2B errors being retried.
for _, name in ipairs({ "Stalled", "Degraded" }) do
  local c = condition(name)
  if is_true(c) then
    return verdict("Degraded", text(c))
  end
end
if phase == "Failed" or phase == "Degraded" then
  return verdict("Degraded", text(ready) ~= "" and text(ready) or ("phase " .. phase))
end

-- Paused: Ready=True (reason Paused) once every sandbox is paused.
if obj.spec.paused or phase == "Paused" then
  if is_true(ready) then
    return verdict("Suspended", text(ready))
  end
  return verdict("Progressing", text(ready) ~= "" and text(ready) or "Pausing")
end

if is_true(ready) then
  return verdict("Healthy", text(ready))
end

local message = text(ready)
if message == "" then
  message = text(condition("Reconciling"))
end
if message == "" then
  message = "Waiting for the e2b-operator"
end
return verdict("Progressing", message)
