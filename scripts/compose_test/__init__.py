"""`make compose-test`: the images built and the compose stack proven on a real Docker engine.

    .venv/bin/python -m scripts.compose_test [--docs docs/deploy.md] [--build-network host] [--out DIR]

Builds the API, worker and proxy images, measures them (size, user, healthcheck, build tools and caches left,
torch and usqa/trainer/ in the API image, healthchecks failing when the service cannot answer), brings the stack up
scaled out (redis, the proxy, 2 API replicas, 2 workers; a generated token, production settings) and checks
through the published port what a user would try: /readyz, POST /assess on a PNG and a DICOM, /ws/scan,
/metrics, a data-set upload, two debug retrain jobs (one per worker) to SUCCESS, a promotion every replica
serves without a restart, a worker killed mid-job (the job is redelivered and publishes once), an API replica
killed while the proxy keeps serving, and every container still healthy (the workers also while one
trains). `down -v` runs at the end, also when a step fails. On success it prints
one summary line and rewrites docs/deploy.md's generated block. Without a reachable engine or compose it
prints a "skipped" line and exits 0. TORCH_INDEX_URL, when set, is the worker build's torch index.

The modules, in the order a run uses them: config (the stack's shape and limits), shell (commands, waits, the
log), engine (detection, the compose project, its containers), images (build and measure), user_paths, jobs
and faults (the steps), scenario (the steps in order), report (summary line, docs block), __main__ (the CLI).
"""
