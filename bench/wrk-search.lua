-- wrk: POST /runs/crons/search with a small page, as a dashboard would poll it.
wrk.method = "POST"
wrk.body = '{"limit": 10, "offset": 0, "sort_by": "next_run_date", "sort_order": "asc"}'
wrk.headers["Content-Type"] = "application/json"
