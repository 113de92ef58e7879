-- Argo CD health of an e2b.dev E2BTemplate, from the conditions the e2b-operator writes.
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

if obj.status == nil or obj.status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the e2b-operator to observe generation " .. tostring(obj.metadata.generation)
  return hs
end

local ready = condition("Ready")
if is_true(ready) then
  hs.status = "Healthy"
  hs.message = text(ready)
  return hs
end

local stalled = condition("Stalled")
if is_true(stalled) then
  hs.status = "Degraded"
  hs.message = text(stalled)
  return hs
end

hs.status = "Progressing"
hs.message = text(ready)
if hs.message == "" then
  hs.message = text(condition("Reconciling"))
end
if hs.message == "" then
  hs.message = "Waiting for the e2b-operator"
end
return hs
