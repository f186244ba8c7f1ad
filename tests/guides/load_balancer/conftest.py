"""The e2e fixtures (real Celery worker, worker database, lab observer) for the farm guide's
end-to-end tests; the unit tests here need none of them."""

from tests.e2e.conftest import e2e, e2e_worker, lab_calls  # noqa: F401 - fixtures
from tests.execution.harness import exec_app, exec_ctx, exec_db_url  # noqa: F401 - fixtures
