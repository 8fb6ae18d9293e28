"""The Dockerfile and .dockerignore (no Docker engine here): the instructions a build relies on, the
dependency one-liner it runs, and the project installed the way the image installs it."""
from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def instructions(path: Path = ROOT / "Dockerfile") -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: comments dropped, `\\` continuations joined."""
    result, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).strip().partition(" ")
        result.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    return result


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.split("/")[0], p) for p in patterns)


def copy_sources() -> list[str]:
    """Build-context paths the Dockerfile copies, in order."""
    return [part for keyword, args in instructions() if keyword == "COPY" for part in args.split()[:-1]
            if not part.startswith("--")]


def base_image() -> str:
    """The FROM image, with `${ARG}` references filled in from the ARG defaults before it."""
    steps = instructions()
    args = dict(a.split("=", 1) for k, a in steps if k == "ARG" and "=" in a)
    [image] = [a for k, a in steps if k == "FROM"]
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)


def test_every_instruction_is_known_and_the_base_is_pinned():
    known = {"FROM", "ENV", "RUN", "WORKDIR", "COPY", "USER", "ENTRYPOINT", "CMD", "ARG", "LABEL"}
    steps = instructions()
    assert {k for k, _ in steps} <= known
    assert [k for k, _ in steps if k != "ARG"][0] == "FROM"
    image, _, tag = base_image().partition(":")
    assert tag and tag != "latest" and re.match(r"\d+\.\d+\.\d+", tag), f"base image not pinned: {image}:{tag}"


def lock_python(lock: Path = ROOT / "requirements.lock") -> str:
    """The Python the lock was resolved for, from its header line `# python X.Y`."""
    [version] = re.findall(r"^# python (\d+\.\d+)", lock.read_text(), re.M)
    return version


def python_check() -> str:
    """The Dockerfile's build-time check of the base image's Python against the lock."""
    [check] = [a for k, a in instructions() if k == "RUN" and "sys.version_info" in a]
    return check


def test_the_base_is_the_official_python_image_of_the_locks_python():
    """The interpreter agrees with the lock by construction; torch comes from PyPI (its CUDA build on
    Linux), pinned by the lock like every other package, not from a CPU-only index."""
    image, _, tag = base_image().partition(":")
    assert image == "python" and tag.startswith(f"{lock_python()}.") and "slim" in tag
    runs = " ".join(a for k, a in instructions() if k == "RUN")
    assert "download.pytorch.org" not in runs and "--index-url" not in runs


@pytest.mark.parametrize("same", [True, False])
def test_a_base_with_another_python_fails_the_build_in_one_line(tmp_path, same):
    """Run the Dockerfile's check with this Python against a lock for this Python and one for another."""
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    locked = here if same else f"{sys.version_info[0]}.{sys.version_info[1] + 1}"
    text = (ROOT / "requirements.lock").read_text().replace(f"# python {lock_python()}", f"# python {locked}")
    (tmp_path / "requirements.lock").write_text(text)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(python_check(), shell=True, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert (result.returncode == 0) == same, result.stderr
    if not same:
        assert result.stderr.count("\n") == 1 and f"base image has Python {here}" in result.stderr
        assert f"resolved for Python {locked}" in result.stderr and "PYTHON_IMAGE" in result.stderr


def test_the_image_knows_its_commit_without_rebuilding_the_layers():
    """MLflow's code_version tag in a pod: the commit passed at build time, set after every RUN."""
    from components.tracking.runs import COMMIT_ENV

    steps = instructions()
    assert ("ARG", 'GIT_COMMIT=""') in steps and ("ENV", f"{COMMIT_ENV}=${{GIT_COMMIT}}") in steps
    assert steps.index(("ARG", 'GIT_COMMIT=""')) > max(i for i, (k, _) in enumerate(steps) if k == "RUN")


def test_runs_as_non_root_with_mol_as_entry_point():
    steps = instructions()
    users = [args for k, args in steps if k == "USER"]
    assert users and users[-1] not in ("0", "root"), "the image must end as a non-root user"
    assert steps.index(("USER", users[-1])) > max(i for i, (k, _) in enumerate(steps) if k == "RUN"), \
        "every RUN (installs) comes before switching to the unprivileged user"
    [entrypoint] = [json.loads(args) for k, args in steps if k == "ENTRYPOINT"]
    assert entrypoint == ["mol"]
    # the Kubeflow steps' security context names the same uid
    from pipeline.pipeline import RUN_AS_USER
    assert users[-1] == str(RUN_AS_USER)


def test_dependencies_are_installed_before_the_source_is_copied():
    """A source edit must not invalidate the (large) dependency layer."""
    steps = instructions()
    lock_copy = next(i for i, (k, a) in enumerate(steps) if k == "COPY" and "requirements.lock" in a.split())
    dep_install = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "-c requirements.lock" in a)
    source_copies = [i for i, (k, a) in enumerate(steps) if k == "COPY" and
                     {"components", "mol_model", "pipeline"} & set(a.split()[:-1])]
    assert source_copies and lock_copy < dep_install < min(source_copies)
    [project_install] = [a for k, a in steps if k == "RUN" and "pip install --no-deps ." in a]
    assert steps.index(("RUN", project_install)) > max(source_copies)


def test_copied_files_exist_and_are_not_excluded_by_dockerignore():
    patterns = dockerignore()
    for source in copy_sources():
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is not in the repository"
        assert not ignored(source, patterns), f".dockerignore excludes {source}, which the Dockerfile copies"
    for package in ("components", "mol_model", "pipeline"):
        assert package in copy_sources()


def test_dockerignore_keeps_local_state_out_of_the_build_context():
    patterns = dockerignore()
    for local in (".venv", ".git", "data", "runs", "reports", "mlruns", "mlartifacts", "mlflow.db",
                  "components/__pycache__", ".dvc"):
        assert ignored(local, patterns), f"{local} would be sent to the Docker daemon"


def test_the_dependency_one_liner_lists_the_runtime_dependencies(tmp_path):
    """Run the Dockerfile's own command that turns pyproject.toml into a requirements list."""
    [run] = [a for k, a in instructions() if k == "RUN" and "tomllib" in a]
    extract = run.split("&& pip install")[0]
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(extract.replace("/tmp/", f"{tmp_path}/"), shell=True, cwd=tmp_path, env=env, check=True)
    requirements = (tmp_path / "runtime-requirements.txt").read_text().split("\n")
    names = {re.split(r"[<>=\[ ]", r)[0].lower() for r in requirements if r}
    assert "torch==2.13.0" in requirements
    assert {"kfp", "mlflow", "dvc", "opencv-contrib-python-headless", "psutil", "nvidia-ml-py"} <= names
    locked = {line.split("==")[0].lower() for line in (ROOT / "requirements.lock").read_text().splitlines()}
    assert "nvidia-ml-py" in locked, "the image's GPU-metrics package is pinned by the lock too"
    assert not {"pytest", "moto"} & names, "dev tools do not belong in the image"


def test_the_project_installed_as_in_the_image_runs_mol(tmp_path):
    """Copy exactly what the Dockerfile copies, install it with --no-deps into a fresh venv whose
    dependencies come from this environment, and run `mol` from that install (not this checkout)."""
    context = tmp_path / "context"
    for source in copy_sources():
        target = context / source
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / source, target)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.run([venv / "bin" / "python", "-c", purelib], capture_output=True, text=True,
                               check=True).stdout.strip())
    # this environment's packages as plain path entries: its .pth files (our editable install) stay unread
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # pip and setuptools come through deps.pth too; run by the new venv's python, `mol` gets its shebang
    subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    str(context)], check=True, cwd=tmp_path)

    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    mol = venv / "bin" / "mol"
    result = subprocess.run([mol, "--help"], capture_output=True, text=True, cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert "pipeline" in result.stdout and "train" in result.stdout
    where = subprocess.run([venv / "bin" / "python", "-c",
                            "import components, mol_model, pipeline.pipeline, components.data.casme2; "
                            "print(components.__file__)"], capture_output=True, text=True, cwd=elsewhere)
    assert where.returncode == 0, where.stderr
    assert str(venv) in where.stdout, f"imported from the checkout, not the install: {where.stdout}"
    compiled = subprocess.run([mol, "pipeline", "compile", "--params", ROOT / "params.yaml", "--out", "p.yaml"],
                              capture_output=True, text=True, cwd=elsewhere)
    assert compiled.returncode == 0, compiled.stderr
    assert (elsewhere / "p.yaml").stat().st_size > 1000
