"""What the compose test runs and how long each step may take: the stack's shape, names and limits."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT = "usqa-compose-test"
COMPOSE_FILES = ("docker-compose.yml", "docker/compose-test.yml")
IMAGES = {  # image -> (Dockerfile, the compose service that runs it)
    "usqa-api": ("docker/api.Dockerfile", "api"),
    "usqa-worker": ("docker/worker.Dockerfile", "worker"),
    "usqa-proxy": ("docker/proxy.Dockerfile", "proxy"),
}
API_REPLICAS = 2
WORKERS = 2
SERVED_MODEL = "usqa-prostate"
SIDE_MODEL = "usqa-compose-test"  # jobs that must not touch the served model publish here
PRESET = "transrectal_prostate"
# A debug job that runs long enough to be killed mid-training and still ends well inside the soft time limit
# docker/compose-test.yml sets (its visibility timeout decides when the killed job comes back).
LONG_JOB_OVERRIDES = {"train_baseline": False, "episodes": 20, "steps_per_episode": 5, "batch_size": 16}
READY_MARKERS = {  # service -> the log line that says it is ready
    "api": "Application startup complete",
    "worker": " ready.",
    "proxy": " is UP, reason: Layer7 check passed",
}
BUILD_TIMEOUT_S = 3600
HEALTHY_TIMEOUT_S = 300
JOB_TIMEOUT_S = 300
REDELIVERY_TIMEOUT_S = 420
SWAP_TIMEOUT_S = 60
UNHEALTHY_TIMEOUT_S = 120
SCAN_SECONDS = 4.0
KILLED_API_REQUESTS = 30
DOCS_BEGIN = "<!-- generated:compose-test begin (make compose-test) -->"
DOCS_END = "<!-- generated:compose-test end -->"
MB = 1_000_000  # docker reports image sizes in decimal megabytes
