"""A Python toolchain on the machine's own interpreter, for Bazel 4.2.3.

The project's third-party packages (TensorFlow, Keras, ...) are installed with
`pip install -r requirements.txt` into one interpreter; Bazel downloads none.
This repository rule finds that interpreter and declares a `py_runtime` and a
Python toolchain for it, so that every `py_binary` and `py_test` runs on it:

- `PYTHON_BIN_PATH`, if set (`bazel test --repo_env=PYTHON_BIN_PATH=/path/to/python3 ...`);
- else the `python3` found on `PATH`.

The path recorded is the interpreter's own `sys.executable`, so a pyenv or
virtualenv shim resolves to the real interpreter.
"""

_BUILD = """\
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

package(default_visibility = ["//visibility:public"])

# {version}
py_runtime(
    name = "py3_runtime",
    interpreter_path = "{executable}",
    python_version = "PY3",
    stub_shebang = "#!{executable}",
)

py_runtime_pair(
    name = "runtime_pair",
    py3_runtime = ":py3_runtime",
)

toolchain(
    name = "toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
"""

def _local_python_impl(rctx):
    python = rctx.os.environ.get("PYTHON_BIN_PATH", "")
    if not python:
        python = rctx.which("python3")
        if not python:
            fail("No python3 on PATH. Install Python 3 or pass " +
                 "--repo_env=PYTHON_BIN_PATH=/path/to/python3.")
    result = rctx.execute([
        python,
        "-c",
        "import sys; print(sys.executable); print(sys.version.split()[0]); " +
        "print(sys.version_info[0])",
    ])
    if result.return_code != 0:
        fail("Could not run the Python interpreter {}: {}".format(
            python,
            result.stderr,
        ))
    executable, version, major = result.stdout.strip().splitlines()
    if major != "3":
        fail("Python 3 is required. Received: {} (Python {})".format(
            executable,
            version,
        ))
    rctx.file("WORKSPACE", 'workspace(name = "{}")\n'.format(rctx.name))
    rctx.file("BUILD", _BUILD.format(
        executable = executable,
        version = "Python {} at {}".format(version, executable),
    ))

local_python = repository_rule(
    implementation = _local_python_impl,
    environ = ["PATH", "PYTHON_BIN_PATH"],
    local = True,
)
