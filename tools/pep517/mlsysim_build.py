"""In-tree PEP 517 build backend for `pip install .` without network access.

It needs nothing from PyPI: CMake builds the pybind11 extension for the running interpreter, and the
wheel is written with `zipfile`. Works with any CPython that has its development headers, the
Debian packages from scripts/install-deps.sh, and pybind11-dev.
"""
from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile
from pathlib import Path

NAME = "mlsysim"
VERSION = "0.1.0"
ROOT = Path(__file__).resolve().parents[2]


def _tag() -> str:
    impl = f"cp{sys.version_info.major}{sys.version_info.minor}"
    abi = impl + (getattr(sys, "abiflags", "") or "")
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return f"{impl}-{abi}-{plat}"


def _metadata() -> str:
    return (f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n"
            "Summary: First-principles ML systems modeling on a C++ engine\n"
            "Requires-Python: >=3.9\n")


def _build_extension(build_dir: Path) -> Path:
    jobs = str(os.cpu_count() or 2)
    subprocess.check_call(["cmake", "-S", str(ROOT), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
                           "-DMLSYSIM_BUILD_TESTS=OFF", "-DMLSYSIM_BUILD_BENCHMARKS=OFF",
                           f"-DPython_EXECUTABLE={sys.executable}"], stdout=sys.stderr)
    subprocess.check_call(["cmake", "--build", str(build_dir), "--target", "_core", "-j", jobs],
                          stdout=sys.stderr)
    package = build_dir / "python" / NAME
    if not list(package.glob("_core*")):
        raise RuntimeError("the _core extension was not built: install python3-dev and pybind11-dev")
    return package


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    dist_info = Path(metadata_directory) / f"{NAME}-{VERSION}.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "METADATA").write_text(_metadata())
    return dist_info.name


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    tag = _tag()
    wheel_name = f"{NAME}-{VERSION}-{tag}.whl"
    with tempfile.TemporaryDirectory(prefix="mlsysim-wheel-") as tmp:
        package = _build_extension(Path(tmp) / "build")
        records = []
        path = Path(wheel_directory) / wheel_name
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(package.rglob("*")):
                if f.is_dir() or "__pycache__" in f.parts:
                    continue
                arcname = f"{NAME}/{f.relative_to(package).as_posix()}"
                data = f.read_bytes()
                zf.writestr(arcname, data)
                records.append(_record_line(arcname, data))
            dist = f"{NAME}-{VERSION}.dist-info"
            wheel_meta = f"Wheel-Version: 1.0\nGenerator: mlsysim_build\nRoot-Is-Purelib: false\nTag: {tag}\n"
            for fname, text in (("METADATA", _metadata()), ("WHEEL", wheel_meta)):
                data = text.encode()
                zf.writestr(f"{dist}/{fname}", data)
                records.append(_record_line(f"{dist}/{fname}", data))
            records.append(f"{dist}/RECORD,,")
            zf.writestr(f"{dist}/RECORD", "\n".join(records) + "\n")
    return wheel_name


def build_sdist(sdist_directory, config_settings=None):
    name = f"{NAME}-{VERSION}"
    path = Path(sdist_directory) / f"{name}.tar.gz"
    keep = ["CMakeLists.txt", "pyproject.toml", "README.md", "cmake", "catalog", "src", "python",
            "tools", "tests", "bench"]
    with tarfile.open(path, "w:gz") as tar:
        for item in keep:
            if (ROOT / item).exists():
                tar.add(ROOT / item, arcname=f"{name}/{item}",
                        filter=lambda t: None if "__pycache__" in t.name else t)
        info = tarfile.TarInfo(f"{name}/PKG-INFO")
        data = _metadata().encode()
        info.size = len(data)
        import io
        tar.addfile(info, io.BytesIO(data))
    return path.name
