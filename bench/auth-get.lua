-- wrk script: add the admin token to every request.
function init(args)
	wrk.headers["Authorization"] = "Bearer " .. os.getenv("COCOD_TOKEN")
end
