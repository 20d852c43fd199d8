"""Check that requirements/lock.txt is the lock of pyproject.toml and requirements/dev.in.

Run in the environment the lock was installed into (``make check-lock``): the dependencies of each locked
package are read from its installed metadata. Exit status 1, one line per problem, when

- a requirement of pyproject.toml (``dependencies`` and every extra) or of requirements/dev.in is not pinned
  in the lock, or its pin does not satisfy it;
- a locked package's own dependency (with the extras asked of it) is missing from the lock or not satisfied;
- the lock pins a package that nothing requires any more (compiled from an older pyproject.toml);
- a pin carries no ``--hash`` or is not an exact ``==`` pin;
- an installed package is not at the lock's version (then the check cannot read the right metadata).

The fix for the first three is ``make lock``; for the last, ``make install`` (or ``make clean``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(?P<version>[^\s;\\]+)")


def read_lock(path: Path) -> tuple[dict[str, str], list[str]]:
    """Pins {canonical name: version} of a pip-compile lock, and the problems of its format."""
    pins: dict[str, str] = {}
    problems: list[str] = []
    current = None
    hashed: set[str] = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0].isspace():
            if stripped.startswith("--hash=") and current:
                hashed.add(current)
            continue
        match = PIN.match(stripped)
        if not match:
            problems.append(f"{path}:{number}: not an exact pin (name==version): {stripped}")
            current = None
            continue
        current = canonicalize_name(match["name"])
        if current in pins:
            problems.append(f"{path}:{number}: {current} is pinned twice")
        pins[current] = match["version"]
        if "--hash=" in stripped:
            hashed.add(current)
    problems += [f"{path}: {name}=={pins[name]} has no --hash" for name in sorted(set(pins) - hashed)]
    return pins, problems


def read_inputs(pyproject: Path, dev_in: Path) -> tuple[str, list[tuple[Requirement, str]]]:
    """The project's name and every requirement the lock is compiled from, each with where it comes from."""
    project = tomllib.loads(pyproject.read_text())["project"]
    inputs = [(Requirement(r), f"{pyproject.name} dependencies") for r in project.get("dependencies", [])]
    for extra, requirements in project.get("optional-dependencies", {}).items():
        inputs += [(Requirement(r), f"{pyproject.name} extra {extra!r}") for r in requirements]
    for number, line in enumerate(dev_in.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-"):
            raise SystemExit(f"{dev_in}:{number}: options are not supported here: {line}")
        try:
            inputs.append((Requirement(line), f"{dev_in.name}:{number}"))
        except InvalidRequirement as e:
            raise SystemExit(f"{dev_in}:{number}: {e}") from None
    return canonicalize_name(project["name"]), inputs


def check(pyproject: Path, dev_in: Path, lock: Path) -> list[str]:
    """Every problem found, one line each (empty when the lock agrees with its inputs)."""
    pins, problems = read_lock(lock)
    own_name, inputs = read_inputs(pyproject, dev_in)
    base_env = default_environment()

    installed: dict[str, str] = {}
    for name, version in pins.items():
        try:
            installed[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{name}=={version} is locked but not installed here: run `make install`")
            continue
        if installed[name] != version:
            problems.append(f"{name} is installed at {installed[name]}, the lock pins {version}: run `make install`")

    # walk the requirements from the inputs through the installed metadata, as pip would resolve them
    queue = [(req, where, "") for req, where in inputs]
    reached: set[str] = set()
    extras_done: set[tuple[str, str]] = set()
    while queue:
        req, where, extra = queue.pop()
        if req.marker is not None and not req.marker.evaluate({**base_env, "extra": extra}):
            continue
        name = canonicalize_name(req.name)
        if name == own_name:
            continue
        if name not in pins:
            problems.append(f"{req} ({where}) is not in {lock.name}: run `make lock`")
            continue
        if not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req} ({where}) is not satisfied by {name}=={pins[name]}: run `make lock`")
        if installed.get(name) != pins[name]:
            continue  # its metadata is not the locked version's; reported above
        for wanted in ("", *sorted(req.extras)):
            if (name, wanted) in extras_done:
                continue
            extras_done.add((name, wanted))
            for dependency in importlib.metadata.requires(name) or []:
                queue.append((Requirement(dependency), f"required by {name}", wanted))
        reached.add(name)

    if all(installed.get(name) == version for name, version in pins.items()):  # else the walk was cut short
        for name in sorted(set(pins) - reached):
            problems.append(f"{name}=={pins[name]} is locked but nothing requires it any more: run `make lock`")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    parser.add_argument("--dev-in", type=Path, default=ROOT / "requirements" / "dev.in")
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements" / "lock.txt")
    args = parser.parse_args(argv)
    problems = check(args.pyproject, args.dev_in, args.lock)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{args.lock} does not agree with its inputs: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{args.lock}: every requirement of {args.pyproject.name} and {args.dev_in.name} is pinned and satisfied")
    return 0


if __name__ == "__main__":
    sys.exit(main())
