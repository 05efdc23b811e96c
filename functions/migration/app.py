"""CloudFormation custom resource: creates the database's indexes once per deploy."""
from crm.migration import handler  # noqa: F401
