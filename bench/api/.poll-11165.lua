local paths = {"/api/admin/reprocessing/jobs/743a7658bb07", "/api/admin/reprocessing/jobs/743a7658bb07/workers"}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[n % 2 + 1])
end
function delay()
  return 20
end
