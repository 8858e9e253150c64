"""The WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi …`."""

from webapp import create_app
from webapp.config import load_env_file

load_env_file()  # development: the working directory's .env (production: the environment only)
app = create_app()
