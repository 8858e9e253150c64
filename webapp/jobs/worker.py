"""The worker's entry point: `celery -A webapp.jobs.worker worker` (README "Deploying")."""

from webapp import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]
