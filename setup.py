"""The wheel claims one import name, `crm_renewals`: each top-level folder of the repository
is installed as a package under it (connector/ -> crm_renewals.connector, ...)."""

from setuptools import find_packages, setup

FOLDERS = ("connector", "webhooks", "jobs", "console")

setup(
    packages=[f"crm_renewals.{p}" for p in find_packages(include=[f"{f}*" for f in FOLDERS])],
    package_dir={f"crm_renewals.{f}": f for f in FOLDERS},
)
