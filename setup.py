"""Package discovery for the one layout fdaref has: the repository keeps backends/, conformance/ and cli/ at
the top level so the architecture is visible, and installs them as fdaref.backends, fdaref.conformance and
fdaref.cli. Every package under those roots is found here (a folder with an __init__.py), so a new
subpackage is installed without editing a list. Everything else is in pyproject.toml."""
from setuptools import find_packages, setup

# installed name -> folder in the repository
ROOTS = {"fdaref": "fdaref", "fdaref.backends": "backends", "fdaref.conformance": "conformance", "fdaref.cli": "cli"}


def discover() -> list[str]:
    packages = []
    for name, folder in ROOTS.items():
        packages.append(name)
        packages += [f"{name}.{sub}" for sub in find_packages(folder)]
    return packages


setup(packages=discover(), package_dir=ROOTS)
