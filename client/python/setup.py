"""Generates the gRPC stubs from the repository's proto/ into the built package, so
no generated file is kept in git. Build from a checkout of the repository:
`pip install ./client/python`."""

import re
from importlib import resources
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PROTO_ROOT = Path(__file__).resolve().parent.parent.parent / "proto"
PROTO = "codex/jobs/v1/jobs.proto"


class build_py_with_stubs(build_py):
    def run(self) -> None:
        super().run()
        from grpc_tools import protoc

        if not (PROTO_ROOT / PROTO).is_file():
            raise SystemExit(f"{PROTO_ROOT / PROTO} is missing: build the package from a checkout of codex-jobs")
        out = Path(self.build_lib) / "codex_jobs" / "_proto"
        generated = out / "codex" / "jobs" / "v1"
        out.mkdir(parents=True, exist_ok=True)
        # grpcio-tools carries the well-known types (Timestamp, Duration) the proto imports.
        well_known = resources.files("grpc_tools") / "_proto"
        status = protoc.main([
            "protoc", f"-I{PROTO_ROOT}", f"-I{well_known}", f"--python_out={out}",
            f"--pyi_out={out}", f"--grpc_python_out={out}", str(PROTO_ROOT / PROTO),
        ])
        if status != 0:
            raise SystemExit(f"protoc failed on {PROTO} with status {status}")
        # Flatten into codex_jobs._proto, so the package owns no top-level `codex`
        # module; the descriptor keeps its file name codex/jobs/v1/jobs.proto.
        for path in generated.iterdir():
            text = path.read_text()
            text = re.sub(r"^from codex\.jobs\.v1 import ", "from . import ", text, flags=re.M)
            (out / path.name).write_text(text)
            path.unlink()
        for directory in (generated, generated.parent, generated.parent.parent):
            directory.rmdir()
        (out / "__init__.py").write_text('"""Generated from proto/codex/jobs/v1/jobs.proto."""\n')


setup(cmdclass={"build_py": build_py_with_stubs})
