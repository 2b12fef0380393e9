"""Print pip constraints pinning each direct dependency of pyproject.toml to its lower bound's release series.

`>=X.Y.Z` becomes `==X.Y.Z`; a bound with fewer parts names a series (`>=2.3` admits 2.3.1 where no 2.3.0 exists), so
`>=X.Y` and `>=X` become `==X.Y.*` and `==X.0.*`: the first release of that series that pip finds, with its fixes.

Used by `make test-lowest` (scripts/lock.sh lowest) to check that the lower bounds pyproject.toml states are real.
torch is left out: it is installed first from the Makefile's TORCH.
"""

import re
from pathlib import Path


try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def lower_bounds(pyproject: Path, extras: tuple[str, ...] = ("dev",)) -> list[str]:
    """Returns a `name==...` constraint for every requirement of `pyproject` (and its `extras`) with a `>=` bound.

    Args:
        pyproject: Path of a pyproject.toml.
        extras: Optional-dependency groups to include.

    Returns:
        Constraint lines, in the order of the file, torch excluded.
    """
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project.get("optional-dependencies", {}).get(extra, [])
    lines = []
    for requirement in requirements:
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(\[[^\]]*\])?\s*(.*)$", requirement)
        name, specifiers = match.group(1), match.group(3)
        bound = re.search(r">=\s*([0-9][^,;\s]*)", specifiers)
        if bound and name.lower() != "torch":
            parts = bound.group(1).split(".")
            version = ".".join(parts) if len(parts) >= 3 else ".".join((parts + ["0"])[:2]) + ".*"
            lines.append(f"{name}=={version}")
    return lines


if __name__ == "__main__":
    print("\n".join(lower_bounds(Path(__file__).resolve().parent.parent / "pyproject.toml")))
