-- wrk: POST the body in the file $WRK_BODY to the URL, as bench/serving.ts asks:
-- Content-Type from $WRK_TYPE, and Inference-Header-Content-Length from $WRK_HEADER_LENGTH
-- when set (the binary tensor data extension: the JSON header's length).
local file = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = os.getenv("WRK_TYPE") or "application/json"
local header_length = os.getenv("WRK_HEADER_LENGTH")
if header_length and header_length ~= "" then
  wrk.headers["Inference-Header-Content-Length"] = header_length
end
