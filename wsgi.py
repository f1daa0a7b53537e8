"""gunicorn wsgi:app"""

import gc

from app import create_app

app = create_app()
# What the app built at start-up lives for the whole process: keep it out of every garbage collection, so
# collections stay short and request latency has no long tail from them.
gc.freeze()
