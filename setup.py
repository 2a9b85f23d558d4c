"""The wheel claims one import name, `crm_renewals`: each top-level folder of the repository
is installed as a package under it (connector/ -> crm_renewals.connector, ...). Folders of data
(connector/defaults, console/templates, ...) are namespace packages, so setuptools ships them
as declared in pyproject.toml's package-data without warning that they look importable."""

from setuptools import find_namespace_packages, setup

FOLDERS = ("connector", "webhooks", "jobs", "console")

packages = find_namespace_packages(include=[f"{f}*" for f in FOLDERS], exclude=["*__pycache__"])
setup(
    packages=[f"crm_renewals.{p}" for p in packages],
    package_dir={f"crm_renewals.{f}": f for f in FOLDERS},
)
