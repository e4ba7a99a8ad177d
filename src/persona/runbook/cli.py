"""Execute the book's notebooks with papermill for one profile, then render the book.

``python -m persona.runbook --profile cpu``                      execute every notebook, then ``jupyter-book build``
``python -m persona.runbook --profile smoke --no-build``         execute (and copy into the book) only
``python -m persona.runbook --profile gpu --only 02_alignment``  execute one notebook; render when all are executed
``python -m persona.runbook --profile gpu --render-only``        execute nothing; render what was executed
``python -m persona.runbook --profile gpu --param model=/models/llama3``  a parameter other than the profile's
``python -m persona.runbook publish-pages --remote origin``      put ``_build/html`` on the ``gh-pages`` branch

The profile (``profiles/<profile>.yaml``) is checked before anything runs: every section must name a
notebook (or be ``_book``), every key must be a parameter that the notebook's ``parameters`` cell assigns.

``--param [NOTEBOOK.]NAME=VALUE`` (repeatable; VALUE is YAML) sets a parameter on top of the profile: for the
named notebook, or for every executed notebook whose parameters cell assigns NAME. It is checked like the
profile, before anything runs, and is part of the parameters (fingerprint, stamp, provenance) like any other.

Before the first notebook runs, every model the notebooks to execute will load is checked (``persona.models``
``preflight``): a hub id not on disk while the hub is offline, a large model in bfloat16 without a CUDA GPU,
a model that needs more GPU memory than is free; each stops the run with a message naming the fix.

Each notebook is executed into ``_build/executed/<profile>/`` with the parameters of its section. A
notebook is skipped when a fingerprint of (notebook source, its parameters, the package source but this
runner, the pinned dependencies) matches the previous execution and the executed copy is intact (its
checksum is in the stamp), so an unchanged book is not re-executed and a damaged copy is. Before each
notebook the runner prints how long its last run took (the ``<stem>.json`` stamp), and the kernel's
stdout/stderr is forwarded to stderr line by line, prefixed with the notebook's name.

The executed copies are then copied to ``book/generated/``, which the book renders with
``execute_notebooks: off``, together with the provenance of the build (code version, profile, run times,
package versions, data checksums). ``book/generated/`` is only replaced once every chapter has a usable
executed copy for the profile (or, with ``--render-only``, with a placeholder page for each chapter that has
none), and only once the new chapters are all written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from persona.paths import REPO_ROOT, shown
from persona.runbook import execution, layout, pages, publishing
from persona.runbook.logs import configure_logging
from persona.runbook.parameters import did_you_mean, load_profile


def _parser() -> argparse.ArgumentParser:
    known = ", ".join(layout.stems()) or "(none found)"
    epilog = (f"profiles ({shown(layout.PROFILE_DIR)}/*.yaml): {', '.join(layout.profiles()) or '(none found)'}\n"
              f"notebooks ({shown(layout.NOTEBOOK_DIR)}/, the names --only takes): {known}\n\n"
              "publish the rendered book on the gh-pages branch of a remote (what `make publish` runs):\n"
              "  python -m persona.runbook publish-pages [--html _build/html] [--remote origin] [--branch gh-pages]")
    parser = argparse.ArgumentParser(prog="python -m persona.runbook", description=__doc__, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", metavar="PROFILE",
                        help=f"one of {', '.join(layout.profiles())} (default cpu)")
    parser.add_argument("--only", nargs="+", metavar="NOTEBOOK",
                        help="execute only these notebooks (stems, see below); the book is rendered when every "
                             "notebook has been executed for the profile")
    parser.add_argument("--force", action="store_true", help="re-execute even when unchanged")
    parser.add_argument("--param", action="append", default=None, metavar="[NOTEBOOK.]NAME=VALUE",
                        help="set a notebook parameter on top of the profile (repeatable; VALUE is YAML): for "
                             "NOTEBOOK only, or for every executed notebook that has NAME, e.g. --param "
                             "model=/models/Meta-Llama-3-8B-Instruct, --param 02_alignment.batch_size=8")
    parser.add_argument("--render-only", action="store_true",
                        help="execute nothing; render what was executed for the profile, with a placeholder "
                             "page for each notebook that was not")
    parser.add_argument("--no-build", action="store_true", help="do not render (executed copies still go to the book)")
    parser.add_argument("--strict", action="store_true", help="build with -W -n --keep-going")
    parser.add_argument("--output", default=None, help="book output folder (default _build or _build/<profile>)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="papermill's own log: every cell's start and end and every displayed result")
    return parser


def _check_only(parser: argparse.ArgumentParser, only: list[str] | None) -> list[str] | None:
    if only is None:
        return None
    names = [Path(n).name.removesuffix(".ipynb") for n in only]
    known = layout.stems()
    unknown = [n for n in names if n not in known]
    if unknown:
        hints = "".join(did_you_mean(n, known) for n in unknown)
        parser.error(f"--only: unknown notebook(s) {', '.join(unknown)}{hints}; known: {', '.join(known)}")
    return names


def publish_pages_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m persona.runbook publish-pages",
                                     description=pages.publish_pages.__doc__)
    parser.add_argument("--html", default=str(REPO_ROOT / "_build" / "html"), help="the rendered book (default _build/html)")
    parser.add_argument("--remote", default="origin", help="remote name, URL or path (default origin)")
    parser.add_argument("--branch", default="gh-pages")
    args = parser.parse_args(argv)
    pages.publish_pages(Path(args.html), args.remote, args.branch)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["publish-pages"]:
        return publish_pages_main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.profile not in layout.profiles():
        parser.error(f"unknown profile '{args.profile}'; known: {', '.join(layout.profiles())}")
    only = _check_only(parser, args.only)
    if args.render_only and (only or args.force or args.param):
        parser.error("--render-only executes nothing: it takes neither --only nor --force nor --param")
    configure_logging(args.verbose)
    load_profile(args.profile)  # every problem of the profile stops the run here, before any notebook
    if not args.render_only:
        execution.execute(args.profile, only, args.force, verbose=args.verbose, params=args.param)
    problems = execution.unusable(args.profile)
    if problems and not args.render_only:
        if not only:
            raise SystemExit(f"Not executed for profile '{args.profile}': {execution.described(problems)}")
        rest = " ".join(problems)
        layout.say(f"not rendering the book: {execution.described(problems)} not executed for profile "
                   f"'{args.profile}' yet ({shown(layout.GENERATED_DIR)} is left as it was). Later, either")
        command = f"python -m persona.runbook --profile {args.profile}"
        layout.say(f"  {command} --only {rest}   # execute them, then render")
        layout.say(f"  {command} --render-only   # render now, a placeholder for each")
        return None
    if problems and args.strict:
        raise SystemExit(f"--strict renders only a complete book; not executed for '{args.profile}': "
                         f"{execution.described(problems)}")
    publishing.publish(args.profile, placeholders=args.render_only)
    if problems:
        layout.say(f"rendering with a placeholder page for {execution.described(problems)}")
    if not args.no_build:
        default = REPO_ROOT if args.profile == "cpu" else REPO_ROOT / "_build" / args.profile
        publishing.build(Path(args.output) if args.output else default, args.strict)
    return None
