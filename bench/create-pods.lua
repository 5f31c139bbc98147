-- wrk script: POST a pod with a distinct name on every request.
-- Each wrk thread numbers its own pods so names never collide.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
	thread:set("tid", #threads)
	table.insert(threads, thread)
end

function init(args)
	thread_id = tid
	wrk.headers["Content-Type"] = "application/json"
	wrk.headers["Authorization"] = "Bearer " .. os.getenv("COCOD_TOKEN")
end

function request()
	counter = counter + 1
	local body = string.format(
		'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bench-%d-%d","labels":{"app":"bench"}},' ..
		'"spec":{"containers":[{"name":"c","image":"busybox","resources":{"requests":{"cpu":"1m","memory":"1Mi"}}}]}}',
		thread_id, counter)
	return wrk.format("POST", "/api/v1/namespaces/default/pods", nil, body)
end

function response(status, headers, body)
	if status ~= 201 then
		io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n")
	end
end
