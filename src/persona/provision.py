"""Provision everything the notebooks need before they run: data files and embedded models.

``python -m persona.provision`` fetches (and verifies) every data file of the manifest and converts
the embedded models once, so that notebook execution never stalls on a download or conversion.
A file or model that cannot be had ends the run with its message (what to set or install) on
stderr and exit status 1, without a traceback.
"""

from __future__ import annotations

import argparse
import sys

from persona.datafiles import DataError, fetch_all
from persona.models import EMBEDDED, ModelError, model_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="*", default=list(EMBEDDED), help="embedded model names to convert")
    args = parser.parse_args(argv)
    try:
        for name in fetch_all():
            print(f"[provision] data  {name}: ok")
        for name in args.models:
            print(f"[provision] model {name}: {model_path(name)}")
    except (DataError, ModelError) as exc:
        kind = "data" if isinstance(exc, DataError) else "model"
        print(f"[provision] {kind} not available:\n{exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
