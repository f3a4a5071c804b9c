-- Resumes every pause and operator's drain whose ``until`` has passed. Returns the
-- changed entries.
local changed = {}
for _, e in ipairs(all_entries()) do
  if e.state ~= 'up' and e.state ~= 'down' and effective(e) == 'up' then
    set_state(e, 'up', NULL, NULL)
    changed[#changed + 1] = save(e, 'resume', 'expired')
  end
end
return reply_entries(changed)
