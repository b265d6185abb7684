"""The call log in PostgreSQL: models, engine, migrations.

Importing the package loads every model module, so ``Base.metadata`` (migrations, tests)
always sees every table.
"""

from callcenter.db import (
    models,
    models_campaigns,
    models_crm,
    models_ivr,
    models_quality,
    models_security,
    models_wallboard,
    models_webhooks,
)

__all__ = [
    "models",
    "models_campaigns",
    "models_crm",
    "models_ivr",
    "models_quality",
    "models_security",
    "models_wallboard",
    "models_webhooks",
]
