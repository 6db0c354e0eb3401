-- Writes one KPI run's keys, unless Redis holds a newer window's KPIs.
-- KEYS: the run's keys, the first a KPI whose JSON has `window_end`.
-- ARGV[1]: this run's window end (RFC 3339), ARGV[2]: the TTL in seconds,
-- ARGV[3]: '1' to write whatever Redis holds, ARGV[4..]: each key's value.
-- Returns nil when written, else the newer window end Redis holds.

-- RFC 3339 UTC as a string that sorts as the time does, whatever the
-- digits of its fraction of a second.
local function order(t)
  local y, mo, d, h, mi, s, f = string.match(t, '^(%d+)-(%d%d)-(%d%d)T(%d%d):(%d%d):(%d%d)%.?(%d*)Z$')
  if not y then
    return nil
  end
  return string.format('%09d', tonumber(y)) .. mo .. d .. h .. mi .. s .. string.sub(f .. '000000000', 1, 9)
end

if ARGV[3] ~= '1' then
  local held = redis.call('GET', KEYS[1])
  if held then
    local ok, doc = pcall(cjson.decode, held)
    if ok and type(doc) == 'table' and type(doc.window_end) == 'string' then
      local theirs, ours = order(doc.window_end), order(ARGV[1])
      if theirs and ours and theirs > ours then
        return doc.window_end
      end
    end
  end
end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[3 + i], 'EX', ARGV[2])
end
return false
