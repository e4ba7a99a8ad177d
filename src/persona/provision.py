"""Provision everything the notebooks need before they run: data files and embedded models.

``python -m persona.provision`` fetches (and verifies) every data file of the manifest and converts
the embedded models once, so that notebook execution never stalls on a download or conversion.
"""

from __future__ import annotations

import argparse

from persona.data import fetch_all
from persona.models import EMBEDDED, model_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="*", default=list(EMBEDDED), help="embedded model names to convert")
    args = parser.parse_args(argv)
    for name, path in fetch_all().items():
        print(f"[provision] data  {name}: ok")
    for name in args.models:
        print(f"[provision] model {name}: {model_path(name)}")


if __name__ == "__main__":
    main()
