"""The GPU measurement scripts (bench/gpu/) on a machine without a GPU: they parse, show their
options, and refuse to run without PyTorch with a message that says what to install, writing nothing.
Their measurements themselves need a GPU (see bench/gpu/README.md)."""
import importlib.util
import os
import py_compile
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = [os.path.join(ROOT, "bench", "gpu", name) for name in ("microbench.py", "e2e.py")]
HAS_TORCH = importlib.util.find_spec("torch") is not None


def run(*args):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120)


class GpuScriptsWithoutAGpu(unittest.TestCase):
    def test_they_compile_and_show_their_options(self):
        for script in SCRIPTS:
            with self.subTest(script=os.path.basename(script)):
                py_compile.compile(script, doraise=True, cfile=os.path.join(tempfile.mkdtemp(), "c.pyc"))
                r = run(script, "--help")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("--output", r.stdout)

    @unittest.skipIf(HAS_TORCH, "PyTorch is installed here: the missing-PyTorch path cannot be exercised")
    def test_without_pytorch_they_say_what_to_install_and_write_nothing(self):
        for script in SCRIPTS:
            with self.subTest(script=os.path.basename(script)):
                out = os.path.join(tempfile.mkdtemp(), "result.json")
                r = run(script, "--output", out)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn("PyTorch is not installed", r.stderr)
                self.assertNotIn("Traceback", r.stderr)
                self.assertFalse(os.path.exists(out))


if __name__ == "__main__":
    unittest.main()
