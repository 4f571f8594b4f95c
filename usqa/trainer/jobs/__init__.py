"""Retraining jobs on Celery workers: the `usqa.retrain` task, the promotion gate and `usqa worker`."""
