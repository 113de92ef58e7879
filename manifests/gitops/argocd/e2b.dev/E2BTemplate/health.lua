-- Argo CD health of an e2b.dev E2BTemplate, from the status the e2b-operator writes.
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
local stalled = condition("Stalled")
-- Stalled: a failed build or a spec E2B rejects; waits for the user.
if is_true(stalled) then
  return verdict("Degraded", text(stalled))
end
if obj.status.phase == "Failed" then
  return verdict("Degraded", text(ready) ~= "" and text(ready) or "phase Failed")
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
