"""The module Dramatiq's own CLI imports in each worker process (`dramatiq worker.entry`)."""

from api.settings import get_settings
from worker.main import install

broker = install(get_settings())
